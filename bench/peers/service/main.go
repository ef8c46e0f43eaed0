// The seed articles' service (scratch-122x), with two real dependencies so
// that its builds fetch modules: bench/peers.sh builds it with docker build,
// buildah bud and imgbuild, and edits version.go between builds.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

func main() {
	addr := ":8080"
	if port := os.Getenv("PORT"); port != "" {
		addr = ":" + port
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s (%s)\n", version, digest.FromString(r.URL.Path))
	})
	log.Printf("listening on %s", addr)
	log.Fatal(errors.Wrap(http.ListenAndServe(addr, nil), "serving"))
}
