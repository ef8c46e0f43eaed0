// multistage: the seed articles' service, built inside a Go builder image and
// shipped alone in a scratch image. Standard library only.
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	addr := ":8080"
	if port := os.Getenv("PORT"); port != "" {
		addr = ":" + port
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello from a multi-stage build (GIN_MODE=" + os.Getenv("GIN_MODE") + ")\n"))
	})
	log.Printf("listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
