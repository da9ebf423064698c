package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/configtrial"
	"github.com/keso-os/keso/pkg/datasource"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/power"
	"github.com/keso-os/keso/pkg/status"
)

// configApply validates FILE, shows what it changes in the node's local
// config, and makes it the state partition's /keso/config.yaml: for good,
// or with --try as a trial the next boot runs and reverts unless confirmed.
func configApply(args []string, out io.Writer) int {
	fset := flag.NewFlagSet("keso config apply", flag.ContinueOnError)
	try := fset.Duration("try", 0, "apply as a trial: return to the current config unless confirmed within this time (e.g. 5m)")
	auto := fset.Bool("auto-confirm", true, "with --try: confirm once the node is healthy and still has its management address")
	dryRun := fset.Bool("dry-run", false, "validate and show the changes; change nothing")
	noReboot := fset.Bool("no-reboot", false, "write the config (and the trial) for the next boot; do not reboot now")
	if err := fset.Parse(args); err != nil {
		return usageExit(err)
	}
	if fset.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: keso config apply [--try DURATION] [--auto-confirm=false] [--dry-run] [--no-reboot] FILE")
		return 2
	}
	name := fset.Arg(0)
	next, err := os.ReadFile(name)
	if err != nil {
		fmt.Fprintf(out, "keso config apply: %v\n", err)
		return 1
	}
	r := cloudconfig.LoadFile(name, next)
	for _, d := range r.Diagnostics {
		fmt.Fprintln(out, d)
	}
	if !r.Valid() {
		fmt.Fprintf(out, "keso config apply: %s has errors; nothing changed (fix them and apply again; `keso config validate %s` checks)\n", name, name)
		return 1
	}
	root := host.FS{Root: "/"}
	current, err := root.ReadFile(configtrial.ConfigPath)
	if errors.Is(err, fs.ErrNotExist) {
		current = nil
	} else if err != nil {
		fmt.Fprintf(out, "keso config apply: %v\n", err)
		return 1
	}
	local, errs := datasource.Local(root)
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(out, "keso config apply: %v\n", err)
		return 1
	}
	changes, err := configtrial.LocalChanges(local, next)
	if err != nil {
		fmt.Fprintf(out, "keso config apply: %v\n", err)
		return 1
	}
	if changes == "" {
		fmt.Fprintf(out, "keso config apply: %s changes nothing in the node's config\n", name)
		return 0
	}
	fmt.Fprint(out, changes)
	if *dryRun {
		return 0
	}
	if st, err := status.Read(root); err == nil && st.Mode != "disk" {
		fmt.Fprintf(out, "keso config apply: this node runs in %s mode, where the config comes from the boot medium or server; install it (keso install) to keep a config\n", st.Mode)
		return 1
	}
	if *try == 0 {
		if _, err := configtrial.Load(root); err == nil {
			fmt.Fprintln(out, "keso config apply: a config trial is pending: confirm it (keso config confirm) or let it end first")
			return 1
		}
		if err := root.WriteFileAtomic(configtrial.ConfigPath, next, 0o600); err != nil {
			fmt.Fprintf(out, "keso config apply: %v\n", err)
			return 1
		}
		fmt.Fprintf(out, "keso config apply: %s is now %s\n", name, configtrial.ConfigPath)
	} else {
		t := configtrial.Trial{Try: configtrial.Duration(*try), AutoConfirm: *auto, Management: managementAddresses(root),
			Applied: time.Now().UTC(), Source: name}
		if err := configtrial.Begin(root, current, next, t); err != nil {
			fmt.Fprintf(out, "keso config apply: %v\n", err)
			return 1
		}
		how := "keso config confirm"
		if *auto {
			how += fmt.Sprintf(", or automatically once the node is healthy on %s", strings.Join(t.Management, ", "))
		}
		fmt.Fprintf(out, "keso config apply: the next boot tries %s for %s; it stays when confirmed (%s), else the node returns to its current config by itself\n",
			name, *try, how)
	}
	host.Sync()
	if *noReboot {
		return 0
	}
	fmt.Fprintln(out, "keso config apply: rebooting")
	return askInit(power.Reboot)
}

// managementAddresses is where the node is managed from: the address of
// the SSH session running this command, else every address the node has.
func managementAddresses(root host.FS) []string {
	if f := strings.Fields(os.Getenv("SSH_CONNECTION")); len(f) == 4 && net.ParseIP(f[2]) != nil {
		return []string{f[2]}
	}
	st, _ := status.Read(root)
	return st.Addresses
}

// configConfirm keeps a pending config trial.
func configConfirm(out io.Writer) int {
	t, err := configtrial.Confirm(host.FS{Root: "/"})
	host.Sync()
	if err != nil {
		fmt.Fprintf(out, "keso config confirm: %v\n", err)
		return 1
	}
	fmt.Fprintf(out, "keso config confirm: %s stays\n", t.Source)
	return 0
}
