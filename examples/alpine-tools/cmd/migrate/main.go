// migrate: the second tool of the alpine-tools image, in the role the seed
// article gave `soda` (a database migration tool). It applies the *.sql files
// of a folder in name order and records the last one applied; a real tool
// would talk to a database, this one keeps its state in a file.
//
//	migrate -dir /migrations -state /tmp/schema_version up
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	dir := flag.String("dir", "migrations", "folder of *.sql migrations")
	state := flag.String("state", "schema_version", "file recording the last migration applied")
	flag.Parse()
	if flag.NArg() != 1 || flag.Arg(0) != "up" {
		fmt.Fprintln(os.Stderr, "usage: migrate [-dir DIR] [-state FILE] up")
		os.Exit(2)
	}
	files, err := filepath.Glob(filepath.Join(*dir, "*.sql"))
	if err != nil || len(files) == 0 {
		fmt.Fprintf(os.Stderr, "migrate: no migrations in %s\n", *dir)
		os.Exit(1)
	}
	sort.Strings(files)
	for _, f := range files {
		fmt.Printf("migrate: applying %s\n", filepath.Base(f))
	}
	last := strings.TrimSuffix(filepath.Base(files[len(files)-1]), ".sql")
	if err := os.WriteFile(*state, []byte(last+"\n"), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "migrate: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("migrate: %d migrations applied, schema at %s\n", len(files), last)
}
