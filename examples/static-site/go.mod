module example.com/static-site

go 1.19
