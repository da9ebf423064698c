package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/keso-os/keso/pkg/check"
	"github.com/keso-os/keso/pkg/host"
)

func init() {
	register("check", "check the kernel and this system against what k3s needs (--json)", func(args []string) int {
		return runCheck(args, os.Stdout)
	})
}

// runCheck prints the check table (or JSON) and exits 1 when a check failed.
func runCheck(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("keso check", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	root := fs.String("root", "/", "root of the system to check (its /proc, /sys, /lib/modules, /var)")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: keso check [--json] [--root DIR]")
		return 2
	}
	r := check.Run(host.FS{Root: *root})
	if *asJSON {
		b, err := json.MarshalIndent(struct {
			OK bool `json:"ok"`
			check.Report
		}{r.OK(), r}, "", "  ")
		if err != nil {
			fmt.Fprintf(os.Stderr, "keso check: %v\n", err)
			return 2
		}
		fmt.Fprintf(out, "%s\n", b)
	} else if err := r.WriteTable(out); err != nil {
		fmt.Fprintf(os.Stderr, "keso check: %v\n", err)
		return 2
	}
	if !r.OK() {
		return 1
	}
	return 0
}
