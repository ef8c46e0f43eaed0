module example.com/peers

go 1.19

require (
	github.com/opencontainers/go-digest v1.0.0
	github.com/pkg/errors v0.9.1
)
