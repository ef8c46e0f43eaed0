module example.com/api-certs

go 1.19
