// Command guest is the /init of the VM in datadisk's QEMU test: it loads
// the virtio modules, runs the disks phase twice with the real host.Linux,
// writes a file on each mounted disk, unmounts and powers off. It prints
// "RUN<n> <report JSON>" lines and "GUEST-DONE".
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/datadisk"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
)

func main() {
	defer func() {
		fmt.Println("GUEST-DONE")
		host.Linux{}.PowerOff()
	}()
	l := host.Linux{}
	for _, m := range [][3]string{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}} {
		if err := l.Mount(m[0], m[1], m[2], 0, ""); err != nil {
			fmt.Println("GUEST-ERROR", err)
			return
		}
	}
	// Modules are in load order: the test names them 00-x.ko, 01-y.ko….
	mods, _ := filepath.Glob("/lib/mod/*.ko")
	sort.Strings(mods)
	for _, m := range mods {
		if err := l.LoadModule(m, ""); err != nil {
			fmt.Println("GUEST-ERROR", err)
			return
		}
	}
	for i := 0; i < 50; i++ { // wait for the three virtio disks
		if _, err := os.Stat("/dev/vdc"); err == nil {
			break
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 100e6}, nil)
	}
	cfg := &cloudconfig.Config{Keso: cloudconfig.System{Disks: []cloudconfig.Disk{
		{Device: "/dev/vda", Format: true, FSLabel: "fresh", Mount: "/mnt/fresh", Options: []string{"noatime"}, Grow: true},
		{Label: "grown", Mount: "/mnt/grown", Grow: true},
		{Device: "/dev/vdc", Format: true, Mount: "/mnt/photos"},
	}}}
	for i := 1; i <= 2; i++ {
		rec := phase.NewRecorder("disks", os.Stdout, nil)
		datadisk.Apply(cfg, host.FS{Root: "/"}, l, rec)
		b, _ := json.Marshal(rec.Done())
		fmt.Printf("RUN%d %s\n", i, b)
	}
	for _, m := range []string{"/mnt/fresh", "/mnt/grown"} {
		if err := os.WriteFile(m+"/hello", []byte("written in the guest\n"), 0o644); err != nil {
			fmt.Println("GUEST-ERROR", err)
		}
		unix.Sync()
		if err := l.Unmount(m); err != nil {
			fmt.Println("GUEST-ERROR", err)
		}
	}
}
