package sysconf_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/cpio"
	"github.com/keso-os/keso/pkg/deb"
	"github.com/keso-os/keso/pkg/image/kmod"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/test/e2e/qemu"
)

// guestModules are the module files the test kernel's initramfs carries.
var guestModules = map[string]bool{"br_netfilter.ko": true, "bridge.ko": true, "stp.ko": true, "llc.ko": true, "loop.ko": true}

// TestQEMURealKernel runs the local-system phases as PID 1 of a VM with
// Debian's cloud kernel and the real host.Linux: sethostname(2),
// finit_module with parameters and dependencies from a real modules.dep,
// /proc/sys writes (net.bridge.* exists only once br_netfilter is loaded;
// values already in place, like bridge-nf-call-iptables=1, are not
// rewritten),
// /etc files, the rancher user and write_files; the second run must change
// nothing, and the kernel must report the configured values.
func TestQEMURealKernel(t *testing.T) {
	if testing.Short() || os.Getenv("KESO_E2E") == "0" {
		t.Skip("SKIP: QEMU test (-short or KESO_E2E=0)")
	}
	root := qemu.ModuleRoot(t)
	work := t.TempDir()
	kdir := filepath.Join(work, "kernel")
	if err := deb.Extract(qemu.CloudKernelDeb(t, root), kdir, func(n string) bool {
		return strings.HasPrefix(n, "boot/vmlinuz-") || guestModules[path.Base(n)] || path.Base(n) == "modules.builtin"
	}); err != nil {
		t.Fatal(err)
	}
	vmlinuz, _ := filepath.Glob(filepath.Join(kdir, "boot/vmlinuz-*"))
	mdirs, _ := filepath.Glob(filepath.Join(kdir, "lib/modules/*"))
	if len(vmlinuz) != 1 || len(mdirs) != 1 {
		t.Fatalf("kernel package: vmlinuz %v, module dirs %v", vmlinuz, mdirs)
	}
	kver := filepath.Base(mdirs[0])
	tree, err := kmod.Open(mdirs[0])
	if err != nil {
		t.Fatal(err)
	}
	set, err := tree.Resolve([]string{"br_netfilter", "loop"})
	if err != nil {
		t.Fatal(err)
	}

	guest := filepath.Join(work, "init")
	gb := exec.Command("go", "build", "-trimpath", "-o", guest, "./pkg/sysconf/testdata/guest")
	gb.Dir = root
	gb.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := gb.CombinedOutput(); err != nil {
		t.Fatalf("build the guest: %v\n%s", err, out)
	}

	var initrd bytes.Buffer
	w := &cpio.Writer{W: &initrd}
	add := func(e cpio.Entry) {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	dirs := map[string]bool{}
	mkdirs := func(p string) {
		var parts []string
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			parts = append([]string{d}, parts...)
		}
		for _, d := range parts {
			if !dirs[d] {
				dirs[d] = true
				add(cpio.Entry{Name: d, Mode: cpio.TypeDir | 0o755})
			}
		}
	}
	for _, d := range []string{"dev/x", "proc/x", "sys/x", "tmp/x"} {
		mkdirs(d)
	}
	add(cpio.Entry{Name: "dev/console", Mode: cpio.TypeChar | 0o600, RMajor: 5, RMinor: 1})
	file := func(name string, data []byte, mode uint32) {
		mkdirs(name)
		add(cpio.Entry{Name: name, Mode: cpio.TypeReg | mode, Data: data})
	}
	b, err := os.ReadFile(guest)
	if err != nil {
		t.Fatal(err)
	}
	file("init", b, 0o755)
	file("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	file("etc/group", []byte("root:x:0:\n"), 0o644)
	mdir := "lib/modules/" + kver
	file(mdir+"/modules.dep", tree.ModulesDep(set), 0o644)
	if b, err := os.ReadFile(filepath.Join(mdirs[0], "modules.builtin")); err == nil {
		file(mdir+"/modules.builtin", b, 0o644)
	}
	for _, n := range set.Order {
		b, err := os.ReadFile(filepath.Join(mdirs[0], tree.Path[n]))
		if err != nil {
			t.Fatal(err)
		}
		file(mdir+"/"+tree.Path[n], b, 0o644)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	initrdPath := filepath.Join(work, "initrd")
	if err := os.WriteFile(initrdPath, initrd.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	vm := qemu.Start(t, qemu.Config{
		Name: "sysconf", Arch: "amd64", Firmware: qemu.Direct, MemMiB: 512,
		Kernel: vmlinuz[0], Initrd: initrdPath, Append: "console=ttyS0 panic=-1 quiet",
	})
	_, took, err := vm.Expect(regexp.MustCompile(`GUEST-DONE`), 4*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("guest finished %s after QEMU started", took.Round(100*time.Millisecond))
	vm.Kill()
	console := strings.ReplaceAll(vm.Console(), "\r", "")
	if strings.Contains(console, "GUEST-ERROR") {
		t.Fatalf("guest reported an error:\n%s", console)
	}

	changes := map[string][]string{}
	for _, m := range regexp.MustCompile(`(?m)^(RUN\d) (\w+) (\{.*\})$`).FindAllStringSubmatch(console, -1) {
		var r phase.Report
		if err := json.Unmarshal([]byte(m[3]), &r); err != nil {
			t.Fatalf("%s %s: %v", m[1], m[2], err)
		}
		if !r.OK() {
			t.Errorf("%s %s failures: %+v", m[1], m[2], r.Failures)
		}
		for _, c := range r.Changes {
			changes[m[1]] = append(changes[m[1]], m[2]+":"+c.Action+" "+c.Target)
		}
	}
	want := []string{
		"hostname:write /etc/hostname", "hostname:write /etc/hosts", "hostname:set hostname",
		"modules:load llc", "modules:load stp", "modules:load bridge", "modules:load br_netfilter", "modules:load loop",
		"sysctl:set kernel.printk", "sysctl:set net.bridge.bridge-nf-call-arptables", "sysctl:set net.ipv4.ip_forward",
		"environment:write /etc/environment",
		"users:write /etc/passwd", "users:write /etc/group", "users:write /etc/shadow",
		"users:mkdir /home/rancher", "users:mkdir /home/rancher/.ssh", "users:write /home/rancher/.ssh/authorized_keys",
		"files:write /etc/keso-test/owned",
	}
	if got := strings.Join(changes["RUN1"], "\n"); got != strings.Join(want, "\n") {
		t.Errorf("first run changes:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if len(changes["RUN2"]) != 0 {
		t.Errorf("second run changed %v, want nothing", changes["RUN2"])
	}
	for _, kv := range []string{
		"KERNEL hostname=qemu-node.example.com",
		"KERNEL /sys/module/loop/parameters/max_loop=4",
		"KERNEL /proc/sys/net/bridge/bridge-nf-call-iptables=1",
		"KERNEL /proc/sys/net/ipv4/ip_forward=1",
		"KERNEL /proc/sys/net/bridge/bridge-nf-call-arptables=0",
		"KERNEL /proc/sys/kernel/printk=3 4 1 7",
	} {
		if !strings.Contains(console, kv+"\n") {
			t.Errorf("console lacks %q", kv)
		}
	}
	if !regexp.MustCompile(`KERNEL modules=.*br_netfilter`).MatchString(console) {
		t.Errorf("br_netfilter not in /proc/modules:\n%s", console)
	}
}
