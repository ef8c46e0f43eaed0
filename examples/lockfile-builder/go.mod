module example.com/lockfile-builder

go 1.19
