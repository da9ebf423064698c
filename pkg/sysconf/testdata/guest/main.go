// Command guest is the /init of the VM in sysconf's QEMU test: it runs the
// local-system phases twice with the real host.Linux and host.FS{Root: "/"}
// on the initramfs, prints "RUN<n> <phase> <report JSON>" lines, then what
// the kernel says ("KERNEL key=value" lines), "GUEST-DONE", and powers off.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/sysconf"
	"github.com/keso-os/keso/pkg/users"
)

const userData = `#cloud-config
hostname: qemu-node.example.com
ssh_authorized_keys:
- ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c test
write_files:
- path: /etc/keso-test/owned
  owner: rancher
  permissions: "0640"
  content: hello
k3os:
  password: rancher-pw
  modules:
  - br_netfilter
  - loop max_loop=4
  sysctl:
    net.bridge.bridge-nf-call-iptables: "1"
    net.bridge.bridge-nf-call-arptables: "0"
    net.ipv4.ip_forward: "1"
    kernel.printk: "3 4 1 7"
  environment:
    KESO_TEST: "yes"
`

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
	res := cloudconfig.LoadFile("user-data", []byte(userData))
	if !res.Valid() {
		fmt.Println("GUEST-ERROR", res.Diagnostics)
		return
	}
	cfg := &res.Config
	fsys := host.FS{Root: "/"}
	for i := 1; i <= 2; i++ {
		for _, p := range []struct {
			name string
			run  func(*phase.Recorder)
		}{
			{"hostname", func(r *phase.Recorder) { sysconf.Hostname(cfg, fsys, l, r) }},
			{"modules", func(r *phase.Recorder) { sysconf.Modules(cfg, fsys, l, r) }},
			{"sysctl", func(r *phase.Recorder) { sysconf.Sysctl(cfg, fsys, r) }},
			{"environment", func(r *phase.Recorder) { sysconf.Environment(cfg, fsys, r) }},
			{"users", func(r *phase.Recorder) { users.Apply(cfg, fsys, users.Options{}, r) }},
			{"files", func(r *phase.Recorder) { sysconf.Files(cfg, fsys, r) }},
		} {
			rec := phase.NewRecorder(p.name, os.Stdout, nil)
			p.run(rec)
			b, _ := json.Marshal(rec.Done())
			fmt.Printf("RUN%d %s %s\n", i, p.name, b)
		}
	}
	name, _ := l.Hostname()
	fmt.Printf("KERNEL hostname=%s\n", name)
	for _, f := range []string{
		"/sys/module/loop/parameters/max_loop", "/proc/sys/net/bridge/bridge-nf-call-iptables",
		"/proc/sys/net/bridge/bridge-nf-call-arptables",
		"/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/printk",
	} {
		b, err := os.ReadFile(f)
		fmt.Printf("KERNEL %s=%s\n", f, strings.Join(strings.Fields(string(b)), " ")+errString(err))
	}
	mods, _ := os.ReadFile("/proc/modules")
	var names []string
	for _, l := range strings.Split(string(mods), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	fmt.Printf("KERNEL modules=%s\n", strings.Join(names, ","))
}

func errString(err error) string {
	if err != nil {
		return " ERROR " + err.Error()
	}
	return ""
}
