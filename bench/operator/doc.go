// Package operator benchmarks the keso operator's reconcile computation:
// one pass over 1,000 nodes (node views with parsed claims, selection, the
// OSVersion status) and its memory. Run with
// `go test -bench . -benchmem ./bench/operator`; results in bench/RESULTS.md.
package operator
