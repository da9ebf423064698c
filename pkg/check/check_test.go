package check

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/host"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const release = "6.1.0-28-cloud-amd64"

// tree writes files (path → content) under a new root.
func tree(t *testing.T, files map[string]string) host.FS {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(p, "/sbin/") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	return host.FS{Root: root}
}

const (
	installedMounts = `22 1 7:0 / / ro,relatime shared:1 - squashfs /dev/vda2 ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:3 - sysfs sysfs rw
30 24 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw
31 22 254:4 /var /var rw,relatime shared:5 - ext4 /dev/vda4 rw
32 22 0:30 / /etc rw,relatime shared:6 - overlay overlay rw,lowerdir=/etc,upperdir=/keso/state/etc/upper,workdir=/keso/state/etc/work
`
	liveMounts = `22 1 0:20 / / ro,relatime shared:1 - squashfs /dev/loop0 ro
31 22 0:31 / /var rw,nosuid,nodev,relatime shared:5 - tmpfs tmpfs rw,mode=755
33 22 0:32 / /mnt/with\040space rw,relatime shared:7 - tmpfs tmpfs rw
`
	dataDisk  = "34 31 8:17 / /var/lib/rancher rw,relatime shared:8 - ext4 /dev/sdb1 rw\n"
	privateRO = `22 1 7:0 / / ro,relatime - squashfs /dev/vda2 ro
31 22 254:4 /var /var ro,relatime - ext4 /dev/vda4 ro
`
)

func allLoaded() string {
	var b strings.Builder
	mods := append(append([]string{}, RequiredModules...), OptionalModules...)
	mods = append(mods, NetfilterFamilies["nft"]...)
	for _, m := range mods {
		b.WriteString(m + " 16384 0 - Live 0x0000000000000000\n")
	}
	return b.String()
}

func TestRunGolden(t *testing.T) {
	cases := map[string]map[string]string{
		// An installed node after the boot agent prepared it.
		"installed": {
			"/proc/sys/kernel/osrelease":        release + "\n",
			"/proc/modules":                     allLoaded(),
			"/proc/self/mountinfo":              installedMounts,
			"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
			"/proc/sys/kernel/modprobe":         "/sbin/modprobe\n",
			"/sbin/modprobe":                    "keso-init\n",
		},
		// A live boot before modules are loaded: everything is loadable
		// from modules.dep or built in; /var is tmpfs; no io controller.
		"live": {
			"/proc/sys/kernel/osrelease":                   release + "\n",
			"/proc/modules":                                "squashfs 69632 1 - Live 0x0\n",
			"/lib/modules/" + release + "/modules.builtin": "kernel/drivers/net/vxlan/vxlan.ko\n",
			"/proc/sys/kernel/modprobe":                    "/sbin/modprobe\n",
			"/sbin/modprobe":                               "keso-init\n",
			"/lib/modules/" + release + "/modules.dep": "kernel/fs/overlayfs/overlay.ko:\n" +
				"kernel/drivers/net/veth.ko:\nkernel/net/bridge/bridge.ko: kernel/net/802/stp.ko\n" +
				"kernel/net/bridge/br_netfilter.ko: kernel/net/bridge/bridge.ko kernel/net/802/stp.ko\n" +
				"kernel/net/netfilter/nf_conntrack.ko.xz: kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko\n" +
				"kernel/net/ipv4/netfilter/ip_tables.ko:\nkernel/net/ipv4/netfilter/iptable_nat.ko:\nkernel/net/ipv4/netfilter/iptable_filter.ko:\n" +
				"kernel/net/netfilter/nf_nat.ko:\nkernel/net/netfilter/xt_conntrack.ko:\n",
			"/proc/self/mountinfo":              liveMounts,
			"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu memory pids\n",
		},
		// A kernel and a boot that cannot run k3s: no cgroup2, private /,
		// no vxlan, no netfilter, /var read-only.
		"broken": {
			"/proc/sys/kernel/osrelease":      "5.10.0-custom\n",
			"/proc/modules":                   "overlay 1 0 - Live 0x0\nbr_netfilter 1 0 - Live 0x0\nnf-conntrack 1 0 - Live 0x0\n",
			"/sys/module/nf_nat/parameters/x": "",
			"/proc/self/mountinfo":            privateRO,
			"/proc/sys/kernel/modprobe":       "/sbin/modprobe\n", // keso before 0.2: no /sbin/modprobe
		},
		// A live boot with a data disk for k3s: persistent after all.
		"live-data-disk": {
			"/proc/sys/kernel/osrelease":        release + "\n",
			"/proc/modules":                     allLoaded(),
			"/proc/self/mountinfo":              liveMounts + dataDisk,
			"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n",
			"/proc/sys/kernel/modprobe":         "/sbin/modprobe\n",
			"/sbin/modprobe":                    "keso-init\n",
		},
		// No /proc at all (a wrong --root).
		"empty": {},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			fsys := tree(t, files)
			r := Run(fsys)
			var b strings.Builder
			if err := r.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			js, _ := json.MarshalIndent(r, "", "  ")
			got := b.String() + "---\n" + string(js) + "\n"
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if got != string(want) {
				t.Errorf("Run(%s):\ngot:\n%s\nwant:\n%s", name, got, want)
			}
			if wantOK := name == "installed" || strings.HasPrefix(name, "live"); r.OK() != wantOK {
				t.Errorf("Run(%s).OK() = %v, want %v", name, r.OK(), wantOK)
			}
		})
	}
}

// The probe really writes: a /var where nothing can be created fails even
// when the mount options say rw.
func TestVarProbeFails(t *testing.T) {
	fsys := tree(t, map[string]string{"/var/lib/keso": "a file where a directory should be", "/proc/self/mountinfo": installedMounts})
	r := Run(fsys)
	last := r.Results[len(r.Results)-1]
	if last.Name != "/var writable" || last.Status != Fail || !strings.Contains(last.Detail, "/var/lib/keso/.check-write") {
		t.Errorf("/var probe on an unwritable /var: got %+v, want a failure naming the probe", last)
	}
}

func TestParseMountInfo(t *testing.T) {
	ms, err := ParseMountInfo(liveMounts + dataDisk)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ms[2].MountPoint, "/mnt/with space"; got != want {
		t.Errorf("escaped mount point: got %q, want %q", got, want)
	}
	for _, tc := range []struct{ path, want string }{
		{"/var/lib/rancher/k3s", "/var/lib/rancher"}, {"/var/lib", "/var"}, {"/var", "/var"}, {"/variable", "/"}, {"/etc", "/"},
	} {
		m, ok := Containing(ms, tc.path)
		if !ok || m.MountPoint != tc.want {
			t.Errorf("Containing(%q): got %q (%v), want %q", tc.path, m.MountPoint, ok, tc.want)
		}
	}
	if _, err := ParseMountInfo("garbage line\n"); err == nil {
		t.Errorf("ParseMountInfo(garbage): no error, want one")
	}
}

// The real system this test runs on: the checks must not crash and must
// find the kernel; whether it can run k3s depends on the machine.
func TestRunOnThisMachine(t *testing.T) {
	if _, err := os.Stat("/proc/self/mountinfo"); err != nil {
		t.Skip("SKIPPED: no /proc on this machine")
	}
	r := Run(host.FS{Root: "/"})
	if r.Kernel == "" || len(r.Results) < 8 {
		t.Errorf("Run(/): kernel %q, %d results; want the running kernel and every check", r.Kernel, len(r.Results))
	}
	var b strings.Builder
	r.WriteTable(&b)
	t.Logf("this machine:\n%s", b.String())
}
