module example.com/multistage

go 1.19
