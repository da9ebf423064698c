package kmod

import (
	"bytes"
	"strings"
	"testing"
)

func TestModprobe(t *testing.T) {
	cases := []struct {
		args           []string
		loaded         []string
		code           int
		loads, removed string
		stdout, stderr string // substrings; "" means empty output
	}{
		// How the kernel calls it (call_modprobe in kernel/module/kmod.c).
		{args: []string{"-q", "--", "rtnl-link-veth"}, loads: "veth.ko"},
		{args: []string{"-q", "--", "nosuch"}, code: 1},
		{args: []string{"nosuch"}, code: 1, stderr: "modprobe: load module nosuch: module not found"},
		// k3s and kube-proxy run `modprobe NAME`, `modprobe -- NAME`.
		{args: []string{"--", "br-netfilter-nosuch"}, code: 1, stderr: "module not found"},
		{args: []string{"dummy", "numdummies=2"}, loads: "dummy.ko numdummies=2"},
		{args: []string{"-a", "veth", "fs-overlay"}, loads: "veth.ko overlay.ko"},
		{args: []string{"-qa", "veth", "nosuch", "dummy"}, code: 1, loads: "veth.ko dummy.ko"},
		{args: []string{"-v", "veth"}, loads: "veth.ko", stdout: "insmod /lib/modules/" + rel + "/kernel/drivers/net/veth.ko\n"},
		{args: []string{"--show-depends", "ipt_MASQUERADE"}, loaded: []string{"libcrc32c", "nf_defrag_ipv4", "nf_defrag_ipv6"},
			stdout: "insmod /lib/modules/" + rel + "/kernel/net/netfilter/nf_conntrack.ko\ninsmod /lib/modules/" + rel + "/kernel/net/netfilter/nf_nat.ko\ninsmod /lib/modules/" + rel + "/kernel/net/netfilter/xt_MASQUERADE.ko\n"},
		{args: []string{"-n", "veth"}},
		{args: []string{"-D", "ext4"}, stdout: "builtin ext4\n"},
		{args: []string{"-r", "veth", "nf-nat"}, removed: "veth nf_nat"},
		{args: []string{"-rn", "veth"}, stdout: "rmmod veth\n"},
		{args: []string{"-C", "/etc/modprobe.conf", "veth"}, code: 1, stderr: "option -C is not supported"},
		{args: []string{"--first-time", "veth"}, code: 1, stderr: "option --first-time is not supported"},
		{args: []string{"-q"}, code: 1, stderr: "no module name given"},
	}
	for _, c := range cases {
		r := &recorder{}
		var out, errb bytes.Buffer
		code := Modprobe(c.args, NewLoader(node(t, c.loaded...), r), r, &out, &errb)
		if code != c.code {
			t.Errorf("modprobe %v: exit %d, want %d (stderr %q)", c.args, code, c.code, errb.String())
		}
		if got := strings.Join(r.loads, " "); got != c.loads {
			t.Errorf("modprobe %v: loads %q, want %q", c.args, got, c.loads)
		}
		if got := strings.Join(r.removed, " "); got != c.removed {
			t.Errorf("modprobe %v: removed %q, want %q", c.args, got, c.removed)
		}
		if got := out.String(); got != c.stdout {
			t.Errorf("modprobe %v: stdout %q, want %q", c.args, got, c.stdout)
		}
		if got := errb.String(); (c.stderr == "") != (got == "") || !strings.Contains(got, c.stderr) {
			t.Errorf("modprobe %v: stderr %q, want it to contain %q", c.args, got, c.stderr)
		}
	}
}
