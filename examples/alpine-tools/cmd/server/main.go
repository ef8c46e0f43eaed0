// server: the service of the alpine-tools image. It reports the schema
// version the migration tool left behind.
package main

import (
	"log"
	"net/http"
	"os"
	"strings"
)

func main() {
	state := "/tmp/schema_version"
	if s := os.Getenv("SCHEMA_STATE"); s != "" {
		state = s
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		version, err := os.ReadFile(state)
		if err != nil {
			http.Error(w, "no schema: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("alpine-tools: schema " + strings.TrimSpace(string(version)) + "\n"))
	})
	log.Print("listening on :8080")
	log.Fatal(http.ListenAndServe(":8080", nil))
}
