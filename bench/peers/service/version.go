package main

// version is the file bench/peers.sh rewrites for its one-Go-file edit.
const version = "bench"
