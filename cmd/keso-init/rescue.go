package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/initrd"
)

// rescue runs a shell on the console: /bin/sh from the initramfs or the
// mounted root if there is one, else a tiny built-in command loop that can
// look around and reboot. It returns when the user leaves it.
func rescue(con *os.File, h host.Linux, st *initrd.Stage) {
	in, err := os.Open("/dev/console")
	if err != nil {
		fmt.Fprintf(con, "keso-init: rescue shell: %v\n", err)
		return
	}
	defer in.Close()
	for _, sh := range []string{"/bin/sh", initrd.Sysroot + "/bin/sh"} {
		if _, err := os.Stat(sh); err == nil {
			fmt.Fprintf(con, "keso-init: rescue shell %s; exit it to reboot\n", sh)
			_ = h.RunOn(in, con, []string{"PS1=keso-rescue# "}, sh)
			return
		}
	}
	fmt.Fprintln(con, "keso-init: no /bin/sh here; built-in rescue commands: ls DIR, cat FILE, devs, run PROG ARGS, exit (reboots)")
	sc := bufio.NewScanner(in)
	for {
		fmt.Fprint(con, "keso-rescue> ")
		if !sc.Scan() {
			return
		}
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "exit", "reboot":
			return
		case "ls":
			dir := "."
			if len(f) > 1 {
				dir = f[1]
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				fmt.Fprintln(con, err)
			}
			for _, e := range ents {
				fmt.Fprintln(con, filepath.Join(dir, e.Name()))
			}
		case "cat":
			for _, p := range f[1:] {
				b, err := os.ReadFile(p)
				if err != nil {
					fmt.Fprintln(con, err)
				}
				con.Write(b)
			}
		case "devs":
			devs, err := host.ScanBlock("/")
			if err != nil {
				fmt.Fprintln(con, err)
			}
			for _, d := range devs {
				label, ok, _ := initrd.ISOLabel("/dev/" + d.Name)
				iso := ""
				if ok {
					iso = fmt.Sprintf(" iso-label=%q", label)
				}
				fmt.Fprintf(con, "%s partlabel=%q%s\n", d.Name, d.PartLabel, iso)
			}
		case "run":
			if len(f) < 2 {
				continue
			}
			if err := h.RunOn(in, con, nil, f[1:]...); err != nil {
				fmt.Fprintln(con, err)
			}
		default:
			fmt.Fprintf(con, "unknown command %q\n", f[0])
		}
	}
}
