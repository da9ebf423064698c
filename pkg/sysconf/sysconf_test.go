package sysconf

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("golden %s: %v (run go test -update)", p, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden:\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

// put writes files under root (node paths).
func put(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func read(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func noFailures(t *testing.T, r phase.Report) {
	t.Helper()
	if !r.OK() {
		t.Errorf("%s: failures %+v, want none", r.Phase, r.Failures)
	}
}

func TestPlanHostnameGolden(t *testing.T) {
	for _, tc := range []struct{ name, hostname, hosts string }{
		{"hosts-empty", "node1", ""},
		{"hosts-debian", "store-0042.example.com", "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\n"},
		{"hosts-custom", "node1", "10.0.0.5 registry.local\n"},
	} {
		got := PlanHostname(tc.hostname, []byte(tc.hosts))
		golden(t, tc.name, got.Hosts)
		if string(got.Hostname) != tc.hostname+"\n" {
			t.Errorf("%s: /etc/hostname = %q", tc.name, got.Hostname)
		}
		// Planning again over its own output is a fixed point.
		if again := PlanHostname(tc.hostname, got.Hosts); !bytes.Equal(again.Hosts, got.Hosts) {
			t.Errorf("%s: not a fixed point:\n%s\nthen\n%s", tc.name, got.Hosts, again.Hosts)
		}
	}
}

type fakeKernel struct {
	name string
	sets int
	err  error
}

func (k *fakeKernel) Hostname() (string, error) { return k.name, nil }
func (k *fakeKernel) SetHostname(n string) error {
	if k.err != nil {
		return k.err
	}
	k.name = n
	k.sets++
	return nil
}

func TestHostnameApplyIdempotent(t *testing.T) {
	root := t.TempDir()
	fsys := host.FS{Root: root}
	k := &fakeKernel{name: "localhost"}
	cfg := &cloudconfig.Config{Hostname: "node1"}
	rec := phase.NewRecorder("hostname", nil, nil)
	if got := Hostname(cfg, fsys, k, rec); got != "node1" {
		t.Errorf("Hostname = %q", got)
	}
	r := rec.Done()
	noFailures(t, r)
	if len(r.Changes) != 3 || k.name != "node1" {
		t.Errorf("changes %+v, kernel %q; want 3 changes and node1", r.Changes, k.name)
	}
	golden(t, "hosts-empty", []byte(read(t, root, "/etc/hosts")))
	rec = phase.NewRecorder("hostname", nil, nil)
	Hostname(cfg, fsys, k, rec)
	if r := rec.Done(); len(r.Changes) != 0 {
		t.Errorf("second run changes %+v, want none", r.Changes)
	}

	// No configured name: the one in /etc/hostname stays; with none a
	// keso-XXXXXX name is made once and kept.
	rec = phase.NewRecorder("hostname", nil, nil)
	if got := Hostname(&cloudconfig.Config{}, fsys, k, rec); got != "node1" {
		t.Errorf("without config: %q, want the persisted node1", got)
	}
	fresh := host.FS{Root: t.TempDir()}
	first := Hostname(&cloudconfig.Config{}, fresh, &fakeKernel{}, phase.NewRecorder("hostname", nil, nil))
	second := Hostname(&cloudconfig.Config{}, fresh, &fakeKernel{}, phase.NewRecorder("hostname", nil, nil))
	if !strings.HasPrefix(first, "keso-") || len(first) != len("keso-")+6 || first != second {
		t.Errorf("generated names %q then %q, want one keso-XXXXXX kept", first, second)
	}
}

func TestHostnameKernelFailureReported(t *testing.T) {
	k := &fakeKernel{err: errors.New("EPERM")}
	rec := phase.NewRecorder("hostname", nil, func(p string) string { return "user-data:3:11" })
	Hostname(&cloudconfig.Config{Hostname: "n"}, host.FS{Root: t.TempDir()}, k, rec)
	r := rec.Done()
	if len(r.Failures) != 1 || r.Failures[0].Path != "hostname" || r.Failures[0].Where != "user-data:3:11" {
		t.Errorf("failures %+v, want one at hostname (user-data:3:11)", r.Failures)
	}
	if len(r.Changes) != 2 {
		t.Errorf("the files must still be written: changes %+v", r.Changes)
	}
}

func TestSysctlPath(t *testing.T) {
	for in, want := range map[string]string{
		"net.ipv4.ip_forward":                "/proc/sys/net/ipv4/ip_forward",
		"net/ipv4/ip_forward":                "/proc/sys/net/ipv4/ip_forward",
		"net.ipv4.conf.eth0/100.rp_filter":   "/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
		"net/ipv4/conf/eth0.100/rp_filter":   "/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
		"fs.inotify.max_user_instances":      "/proc/sys/fs/inotify/max_user_instances",
		"net.ipv6.conf.all.disable_ipv6":     "/proc/sys/net/ipv6/conf/all/disable_ipv6",
		"net.bridge.bridge-nf-call-iptables": "/proc/sys/net/bridge/bridge-nf-call-iptables",
	} {
		if got := SysctlPath(in); got != want {
			t.Errorf("SysctlPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSysctlApply(t *testing.T) {
	root := t.TempDir()
	put(t, root, map[string]string{
		"/proc/sys/net/ipv4/ip_forward":              "0\n",
		"/proc/sys/net/ipv4/conf/eth0.100/rp_filter": "1\n",
		"/proc/sys/net/ipv4/tcp_rmem":                "4096\t131072\t6291456\n",
	})
	fsys := host.FS{Root: root}
	cfg := &cloudconfig.Config{Keso: cloudconfig.System{Sysctl: map[string]string{
		"net.ipv4.ip_forward":              "1",
		"net.ipv4.conf.eth0/100.rp_filter": "2",
		"net.ipv4.tcp_rmem":                "4096 131072  6291456",
		"vm.no_such_thing":                 "1",
	}}}
	rec := phase.NewRecorder("sysctl", nil, nil)
	Sysctl(cfg, fsys, rec)
	r := rec.Done()
	if got := read(t, root, "/proc/sys/net/ipv4/ip_forward"); got != "1\n" {
		t.Errorf("ip_forward = %q", got)
	}
	if got := read(t, root, "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"); got != "2\n" {
		t.Errorf("eth0.100 rp_filter = %q", got)
	}
	if len(r.Changes) != 2 {
		t.Errorf("changes %+v, want 2 (tcp_rmem already equal)", r.Changes)
	}
	if len(r.Failures) != 1 || r.Failures[0].Path != "keso.sysctl.vm.no_such_thing" {
		t.Errorf("failures %+v, want one at keso.sysctl.vm.no_such_thing", r.Failures)
	}
	rec = phase.NewRecorder("sysctl", nil, nil)
	Sysctl(cfg, fsys, rec)
	if r := rec.Done(); len(r.Changes) != 0 {
		t.Errorf("second run changes %+v", r.Changes)
	}
}

// fakeLoader records loads and marks modules loaded in /proc/modules.
type fakeLoader struct {
	root  string
	calls []string
	fail  map[string]bool
}

func (l *fakeLoader) LoadModule(p, params string) error {
	name := strings.TrimSuffix(filepath.Base(p), ".ko")
	if l.fail[name] {
		return errors.New("load module " + p + ": finit_module: exec format error")
	}
	l.calls = append(l.calls, strings.TrimPrefix(p, l.root)+" "+params)
	f, err := os.OpenFile(filepath.Join(l.root, "proc/modules"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(name + " 16384 0 - Live 0x0\n")
	return err
}

func TestModules(t *testing.T) {
	root := t.TempDir()
	const dir = "/lib/modules/6.1.0-test"
	put(t, root, map[string]string{
		"/proc/sys/kernel/osrelease":                   "6.1.0-test\n",
		"/proc/modules":                                "loop 32768 0 - Live 0x0\nnf_conntrack 1 0 - Live 0x0\nkvm 1 0 - Live 0x0\n",
		"/sys/module/loop/parameters/max_loop":         "8\n",
		"/sys/module/nf_conntrack/parameters/hashsize": "65536\n",
		"/sys/module/kvm/parameters/ignore_msrs":       "Y\n",
		dir + "/modules.dep": "kernel/net/bridge/br_netfilter.ko: kernel/net/bridge/bridge.ko kernel/net/802/stp.ko kernel/net/llc/llc.ko\n" +
			"kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko\n" +
			"kernel/net/802/stp.ko: kernel/net/llc/llc.ko\n" +
			"kernel/net/llc/llc.ko:\n" +
			"kernel/drivers/net/vxlan/vxlan.ko: kernel/net/ipv4/udp_tunnel.ko\n" +
			"kernel/net/ipv4/udp_tunnel.ko:\n" +
			"kernel/drivers/block/loop.ko:\n" +
			"kernel/drivers/bad.ko:\n",
		dir + "/modules.builtin": "kernel/fs/ext4/ext4.ko\nkernel/drivers/char/hw_random/rng-core.ko\n",
	})
	fsys := host.FS{Root: root}
	l := &fakeLoader{root: root, fail: map[string]bool{"bad": true}}
	cfg := &cloudconfig.Config{Keso: cloudconfig.System{Modules: []string{
		"br_netfilter", "vxlan udp_port=4789", "loop max_loop=8", "ext4", "rng-core default_quality=700", "nosuch", "bad", "bridge",
		"nf_conntrack hashsize=131072", "kvm ignore_msrs=1",
	}}}
	rec := phase.NewRecorder("modules", nil, nil)
	Modules(cfg, fsys, l, rec)
	r := rec.Done()
	want := []string{
		dir + "/kernel/net/llc/llc.ko ",
		dir + "/kernel/net/802/stp.ko ",
		dir + "/kernel/net/bridge/bridge.ko ",
		dir + "/kernel/net/bridge/br_netfilter.ko ",
		dir + "/kernel/net/ipv4/udp_tunnel.ko ",
		dir + "/kernel/drivers/net/vxlan/vxlan.ko udp_port=4789",
	}
	if strings.Join(l.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("loads:\n%s\nwant:\n%s", strings.Join(l.calls, "\n"), strings.Join(want, "\n"))
	}
	var paths []string
	for _, f := range r.Failures {
		paths = append(paths, f.Path)
	}
	if got := strings.Join(paths, " "); got != "keso.modules[4] keso.modules[5] keso.modules[8] keso.modules[6]" {
		t.Errorf("failures at %q, want rng-core (built-in with params), nosuch, nf_conntrack (loaded with other params), bad: %+v", got, r.Failures)
	}
	if f := r.Failures[2].Err; !strings.Contains(f, "already loaded with hashsize=65536") || !strings.Contains(f, "nf_conntrack.hashsize=131072") {
		t.Errorf("loaded-module failure: %s", f)
	}
	if !strings.Contains(r.Failures[0].Err, "rng_core.default_quality=700") {
		t.Errorf("built-in failure should say the command-line form: %s", r.Failures[0].Err)
	}
	if len(r.Changes) != 6 {
		t.Errorf("changes %+v, want 6", r.Changes)
	}
	l.calls = nil
	rec = phase.NewRecorder("modules", nil, nil)
	Modules(cfg, fsys, l, rec)
	if r := rec.Done(); len(r.Changes) != 0 || len(l.calls) != 0 {
		t.Errorf("second run: changes %+v loads %v, want none", r.Changes, l.calls)
	}
}

func TestEnvironment(t *testing.T) {
	root := t.TempDir()
	fsys := host.FS{Root: root}
	env := map[string]string{"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "localhost,10.0.0.0/8", "TRICKY": "a \"quoted\" $HOME `x` \\ back"}
	cfg := &cloudconfig.Config{Keso: cloudconfig.System{Environment: env}}
	rec := phase.NewRecorder("environment", nil, nil)
	got := Environment(cfg, fsys, rec)
	noFailures(t, rec.Done())
	if len(got) != 3 || got["TRICKY"] != env["TRICKY"] {
		t.Errorf("returned %v", got)
	}
	golden(t, "environment", []byte(read(t, root, EnvironmentFile)))
	// A shell reads the values back unchanged.
	out, err := exec.Command("sh", "-c", `. "$1"; printf %s "$TRICKY"`, "sh", fsys.Path(EnvironmentFile)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != env["TRICKY"] {
		t.Errorf("sh read TRICKY=%q, want %q", out, env["TRICKY"])
	}
	rec = phase.NewRecorder("environment", nil, nil)
	Environment(cfg, fsys, rec)
	if r := rec.Done(); len(r.Changes) != 0 {
		t.Errorf("second run changes %+v", r.Changes)
	}
	// Nothing configured and no file: nothing written.
	empty := host.FS{Root: t.TempDir()}
	rec = phase.NewRecorder("environment", nil, nil)
	Environment(&cloudconfig.Config{}, empty, rec)
	if r := rec.Done(); len(r.Changes) != 0 {
		t.Errorf("empty config wrote %+v", r.Changes)
	}
}

func gzb64(t *testing.T, s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

func TestFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root to chown to other users (CI runs as root)")
	}
	root := t.TempDir()
	put(t, root, map[string]string{
		"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nrancher:x:1000:1000:rancher:/home/rancher:/bin/sh\n",
		"/etc/group":  "root:x:0:\nrancher:x:1000:\nadm:x:4:rancher\n",
		"/etc/motd":   "old\n",
	})
	fsys := host.FS{Root: root}
	cfg := &cloudconfig.Config{WriteFiles: []cloudconfig.File{
		{Path: "/etc/motd", Content: "welcome to keso\n"},
		{Path: "/home/rancher/bin/hello", Content: "#!/bin/sh\necho hi\n", Owner: "rancher", Permissions: "0750"},
		{Path: "/opt/b64", Content: base64.StdEncoding.EncodeToString([]byte("binary\x00data")), Encoding: "b64", Owner: "rancher:adm", Permissions: "640"},
		{Path: "/opt/gz", Content: gzb64(t, "gzipped\n"), Encoding: "gz+b64", Owner: "33:44"},
		{Path: "/opt/nobody", Content: "x", Owner: "nobody"},
		{Path: "/usr/local/bin/suid", Content: "x", Permissions: "4755"},
	}}
	rec := phase.NewRecorder("files", nil, nil)
	Files(cfg, fsys, rec)
	r := rec.Done()
	if len(r.Failures) != 1 || r.Failures[0].Path != "write_files[4].owner" {
		t.Errorf("failures %+v, want one at write_files[4].owner", r.Failures)
	}
	if len(r.Changes) != 5 {
		t.Errorf("changes %+v, want 5", r.Changes)
	}
	for _, c := range []struct {
		p        string
		content  string
		mode     fs.FileMode
		uid, gid uint32
	}{
		{"/etc/motd", "welcome to keso\n", 0o644, 0, 0},
		{"/home/rancher/bin/hello", "#!/bin/sh\necho hi\n", 0o750, 1000, 1000},
		{"/opt/b64", "binary\x00data", 0o640, 1000, 4},
		{"/opt/gz", "gzipped\n", 0o644, 33, 44},
		{"/usr/local/bin/suid", "x", 0o755 | fs.ModeSetuid, 0, 0},
	} {
		if got := read(t, root, c.p); got != c.content {
			t.Errorf("%s = %q, want %q", c.p, got, c.content)
		}
		fi, err := os.Stat(filepath.Join(root, c.p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&modeBits != c.mode || st.Uid != c.uid || st.Gid != c.gid {
			t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", c.p, fi.Mode()&modeBits, st.Uid, st.Gid, c.mode, c.uid, c.gid)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "/opt/nobody")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/opt/nobody written despite an unknown owner: %v", err)
	}
	rec = phase.NewRecorder("files", nil, nil)
	Files(cfg, fsys, rec)
	if r := rec.Done(); len(r.Changes) != 0 {
		t.Errorf("second run changes %+v", r.Changes)
	}
	// A mode changed behind our back is put back, without rewriting.
	os.Chmod(filepath.Join(root, "/etc/motd"), 0o600)
	rec = phase.NewRecorder("files", nil, nil)
	Files(cfg, fsys, rec)
	if r := rec.Done(); len(r.Changes) != 1 || r.Changes[0].Action != "chmod" {
		t.Errorf("after chmod behind our back: changes %+v, want one chmod", r.Changes)
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]fs.FileMode{"": 0o644, "0600": 0o600, "755": 0o755, "1777": 0o777 | fs.ModeSticky, "2755": 0o755 | fs.ModeSetgid} {
		got, err := ParseMode(in)
		if err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseMode("0999"); err == nil {
		t.Error("ParseMode(0999) succeeded")
	}
}
