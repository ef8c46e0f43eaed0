module example.com/ci-push

go 1.19
