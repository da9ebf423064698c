// Command keso-init is keso's PID 1. As /init in the initramfs (PID 1 and
// /etc/initrd-release present) it runs the initrd stage (pkg/initrd); as
// /sbin/init in the root file system it runs the system stage
// (pkg/systemstage). It never lets the kernel panic: a failure prints one
// line, then a rescue shell (keso.debug) or a reboot after a bounded wait.
//
// Run as "modprobe" (the root's /sbin/modprobe is a link to it, the path
// the kernel runs to autoload a module) it is keso's modprobe (kmod.Modprobe).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/keso-os/keso/pkg/agent"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/initrd"
	"github.com/keso-os/keso/pkg/kmod"
	"github.com/keso-os/keso/pkg/sshd"
	"github.com/keso-os/keso/pkg/systemstage"
	"github.com/keso-os/keso/pkg/version"
)

const rebootWait = 15 * time.Second

func main() {
	if filepath.Base(os.Args[0]) == "modprobe" {
		h := host.Linux{}
		os.Exit(kmod.Modprobe(os.Args[1:], kmod.NewLoader(host.FS{Root: "/"}, h), h, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("keso-init", version.Version)
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "sftp-server" {
		// The SSH server starts this as the logged-in user for sftp/scp.
		os.Exit(sshd.SFTPMain())
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "keso-init: not PID 1; keso-init is the init of a keso system (try `keso-init version`)")
		os.Exit(2)
	}
	h := host.Linux{}
	con := host.Console()
	defer func() {
		// A Go panic in PID 1 would become a kernel panic: report it like
		// any other failure instead.
		if r := recover(); r != nil {
			fail(con, h, "keso-init", fmt.Errorf("panic: %v", r), false, nil)
		}
	}()
	if _, err := os.Stat("/etc/initrd-release"); err == nil {
		st := &initrd.Stage{Host: h, Log: con}
		err := st.MountAPI()
		debug := false
		if err == nil {
			var cmd string
			var plan initrd.Plan
			cmd, plan, err = st.ReadCmdline()
			debug = plan.Debug
			fmt.Fprintf(con, "keso-init %s: initrd stage, mode %s\n", version.Version, plan.Mode)
			if err == nil {
				err = st.Run(context.Background(), cmd, plan)
			}
		}
		fail(con, h, "initrd stage", err, debug, st)
	}
	ss := &systemstage.Stage{Log: con, Next: func(b initrd.Info) error {
		cmd, _ := os.ReadFile("/proc/cmdline")
		a := &agent.Agent{FS: host.FS{Root: "/"}, Host: h, Log: con, Cmdline: string(cmd),
			Boot: b}
		return a.Run(context.Background())
	}}
	fail(con, h, "system stage", ss.Run(), false, nil)
}

// fail reports a failed stage in one line, then offers the rescue shell or
// reboots after a bounded wait. PID 1 must never exit.
func fail(con *os.File, h host.Linux, stage string, err error, debug bool, st *initrd.Stage) {
	fmt.Fprintf(con, "keso-init: FAILED in %s: %v\n", stage, err)
	if debug {
		rescue(con, h, st)
	} else {
		fmt.Fprintf(con, "keso-init: rebooting in %s (add keso.debug to the kernel command line for a rescue shell)\n", rebootWait)
	}
	time.Sleep(rebootWait)
	if err := h.Reboot(); err != nil {
		fmt.Fprintf(con, "keso-init: %v\n", err)
	}
	select {}
}
