// ci-push: the service a CI pipeline builds on every commit and ships from
// the main branch. Standard library only.
package main

import (
	"log"
	"net/http"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ci-push\n"))
	})
	log.Print("listening on :8080")
	log.Fatal(http.ListenAndServe(":8080", nil))
}
