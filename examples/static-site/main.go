// static-site: serves a folder over HTTP. The recipe copies the folder in as
// a non-root user's files; the address and root come from the image's env.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
)

func main() {
	quiet := flag.Bool("quiet", false, "do not log requests")
	flag.Parse()
	addr, root := os.Getenv("LISTEN"), os.Getenv("ROOT")
	if addr == "" || root == "" {
		log.Fatal("LISTEN and ROOT must be set")
	}
	files := http.FileServer(http.Dir(root))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !*quiet {
			log.Printf("%s %s", r.Method, r.URL.Path)
		}
		files.ServeHTTP(w, r)
	})
	log.Printf("serving %s on %s as uid %d", root, addr, os.Getuid())
	log.Fatal(http.ListenAndServe(addr, handler))
}
