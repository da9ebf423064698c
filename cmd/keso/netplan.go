package main

import (
	"fmt"
	"io"
	"os"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/netconf"
)

func init() {
	register("netplan", "show what the network phase would do with config files on this machine's links (read-only)", runNetplan)
}

func runNetplan(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: keso netplan FILE...   (files merge in order, as at boot)")
		return 2
	}
	var srcs []cloudconfig.Source
	for _, name := range args {
		data, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "keso netplan: %v\n", err)
			return 1
		}
		srcs = append(srcs, cloudconfig.Source{Name: name, Data: data})
	}
	r := cloudconfig.Load(srcs...)
	links, err := host.NewNetlink().Links()
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso netplan: %v\n", err)
		return 1
	}
	return printNetplan(os.Stdout, r, links)
}

func printNetplan(out io.Writer, r cloudconfig.Result, links []netconf.Link) int {
	where := func(path string) string {
		if file, line, col, ok := r.Position(path); ok {
			return fmt.Sprintf("%s:%d:%d: ", file, line, col)
		}
		return ""
	}
	for _, d := range r.Diagnostics {
		fmt.Fprintln(out, d)
	}
	plan, probs := netconf.NewPlan(r.Config, links)
	for _, a := range plan.Actions {
		fmt.Fprintf(out, "%-50s  # %s\n", a, a.Path)
	}
	var wait []string
	for _, w := range plan.Wait {
		if w.Link == "" {
			w.Link = "(the auto-DHCP link)"
		}
		wait = append(wait, w.Link)
	}
	fmt.Fprintf(out, "wait up to %s for: %v\n", plan.WaitOnline, wait)
	fmt.Fprintf(out, "static name servers: %v (DHCP adds its own)\n", plan.Nameservers)
	for _, p := range probs {
		fmt.Fprintf(out, "%serror: %s\n", where(p.Path), p)
	}
	if len(probs) > 0 {
		return 1
	}
	return 0
}
