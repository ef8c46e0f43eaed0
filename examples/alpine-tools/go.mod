module example.com/alpine-tools

go 1.19
