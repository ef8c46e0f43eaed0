// api-certs: the ECR article's API. It calls other services over TLS and
// shows times in its users' zones, so its scratch image needs CA certificates
// and zoneinfo; GIN_MODE=release is the setting its framework reads (this
// example keeps to the standard library and reports it).
package main

import (
	"crypto/x509"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := ":8080"
	if port := os.Getenv("PORT"); port != "" {
		addr = ":" + port
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		zone := r.URL.Query().Get("zone")
		if zone == "" {
			zone = "Asia/Tokyo"
		}
		loc, err := time.LoadLocation(zone)
		if err != nil {
			http.Error(w, "time zone: "+err.Error(), http.StatusInternalServerError)
			return
		}
		// The roots outgoing TLS connections are verified against.
		roots, err := x509.SystemCertPool()
		if err != nil {
			http.Error(w, "CA certificates: "+err.Error(), http.StatusInternalServerError)
			return
		}
		// Deprecated for pools on some systems; on Linux the roots are read from files and listed.
		n := len(roots.Subjects())
		when := time.Date(2024, 1, 1, 0, 0, 0, 0, loc)
		fmt.Fprintf(w, "mode=%s zone=%s offset=%s roots=%d\n", os.Getenv("GIN_MODE"), loc, when.Format("-07:00"), n)
	})
	log.Printf("listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
