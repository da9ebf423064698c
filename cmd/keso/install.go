package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/datasource"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/install"
	"github.com/keso-os/keso/pkg/power"
)

func init() {
	register("install", "install the running live or netboot system to a disk", runInstall)
	register("reboot", "stop k3s, sync, unmount and reboot", func([]string) int { return askInit(power.Reboot) })
	register("poweroff", "stop k3s, sync, unmount and power off", func([]string) int { return askInit(power.PowerOff) })
}

// askInit asks keso-init (PID 1) for an orderly reboot or power-off
// (power.Ask); it stops k3s, syncs and unmounts first.
func askInit(a power.Action) int {
	if err := power.Ask(a); err != nil {
		fmt.Fprintf(os.Stderr, "keso: %v\n", err)
		return 1
	}
	return 0
}

func runInstall(args []string) int {
	fs := flag.NewFlagSet("keso install", flag.ContinueOnError)
	device := fs.String("device", "", "target disk, e.g. /dev/sda (everything on it is erased)")
	config := fs.String("config", "", "config to install: a file, or an http(s) URL")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	powerOff := fs.Bool("power-off", false, "power off when done (default: reboot)")
	noReboot := fs.Bool("no-reboot", false, "neither reboot nor power off when done")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	root := host.FS{Root: "/"}
	in := bufio.NewReader(os.Stdin)
	ask := func(q string) string {
		fmt.Print(q)
		s, _ := in.ReadString('\n')
		return strings.TrimSpace(s)
	}
	if *device == "" {
		disks := install.Disks(root)
		if len(disks) == 0 {
			fmt.Fprintln(os.Stderr, "keso install: no disks found")
			return 1
		}
		fmt.Println("Disks:")
		for _, d := range disks {
			fmt.Printf("  %-14s %8d MiB  %s\n", d.Device, d.Bytes>>20, d.Model)
		}
		*device = ask("Install to which disk? ")
	}
	if *config == "" && !*yes {
		*config = ask("Config file or URL (empty for none): ")
	}
	var data []byte
	if *config != "" {
		var err error
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		data, _, err = datasource.InstallConfig(ctx, root, *config, nil, datasource.Retry{})
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "keso install: config: %v\n", err)
			return 1
		}
		r := cloudconfig.LoadFile(*config, data)
		for _, d := range r.Diagnostics {
			fmt.Fprintln(os.Stderr, d)
		}
		if !r.Valid() && !*yes {
			if a := ask("The config has errors; install anyway? [y/N] "); a != "y" && a != "yes" {
				return 1
			}
		}
	}
	k3os, err := install.Inspect(host.Linux{}, *device)
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso install: %v\n", err)
		return 1
	}
	if !*yes {
		q := fmt.Sprintf("Erase everything on %s and install keso? [y/N] ", *device)
		if k3os {
			q = fmt.Sprintf("%s holds k3OS: install keso beside it, keeping its config, k3s state, homes and SSH host keys (k3OS's partitions stay as they are)? [y/N] ", *device)
		}
		if a := ask(q); a != "y" && a != "yes" {
			fmt.Println("Nothing was written.")
			return 1
		}
	}
	res, err := install.Node(host.Linux{}, root, *device, data)
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso install: %v\n", err)
		return 1
	}
	fmt.Printf("keso install: installed to %s (%d MiB) in %s; config saved on %s\n", *device, res.DiskBytes>>20, res.Took.Round(time.Millisecond), res.State)
	for _, m := range res.Kept {
		if !m.Missing {
			fmt.Printf("keso install: kept k3OS's %s (%s): %d bytes\n", m.From, m.Why, m.Bytes)
		}
	}
	if res.K3OS {
		if res.KeptConfig() && len(data) > 0 {
			fmt.Printf("keso install: the node keeps k3OS's config; the install's config was not saved (change it with keso config apply)\n")
		}
		fmt.Printf("keso install: k3OS's %s stays on %s, readable; the firmware now boots keso\n", install.K3OSStateLabel, res.K3OSState)
	}
	switch {
	case *noReboot:
		return 0
	case *powerOff:
		return askInit(power.PowerOff)
	}
	return askInit(power.Reboot)
}
