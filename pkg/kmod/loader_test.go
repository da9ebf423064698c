package kmod

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/host"
)

const rel = "6.1.0-test"

// A slice of a real tree: modules.dep as pkg/image/kmod writes it, and
// modules.alias lines as depmod writes them from the modules' .modinfo.
const (
	fakeDep = `kernel/drivers/net/veth.ko:
kernel/fs/overlayfs/overlay.ko:
kernel/net/netfilter/nfnetlink.ko:
kernel/net/netfilter/nf_conntrack.ko: kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko:
kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko:
kernel/lib/libcrc32c.ko:
kernel/net/netfilter/nf_nat.ko: kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/xt_MASQUERADE.ko: kernel/net/netfilter/nf_nat.ko kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_tables.ko: kernel/net/netfilter/nfnetlink.ko
kernel/net/netfilter/nft_ct.ko: kernel/net/netfilter/nf_tables.ko kernel/net/netfilter/nfnetlink.ko kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/drivers/net/dummy.ko:
kernel/drivers/virtio/virtio_pci.ko:
`
	fakeAlias = `# Aliases extracted from modules themselves.
alias rtnl-link-veth veth
alias fs-overlay overlay
alias net-pf-16-proto-12 nfnetlink
alias ipt_MASQUERADE xt_MASQUERADE
alias ip6t_MASQUERADE xt_MASQUERADE
alias nft-expr-ct nft_ct
alias nft-expr-notrack nft_ct
alias rtnl-link-dummy dummy
alias pci:v00001AF4d00001000sv*sd*bc*sc*i* virtio_pci
alias fs-overlay2 overlay
`
)

// node writes a fake node tree: the module tables, /proc/modules with
// the given loaded modules, and /sys/module for built-ins.
func node(t *testing.T, loaded ...string) host.FS {
	t.Helper()
	fs := host.FS{Root: t.TempDir()}
	var proc strings.Builder
	for _, m := range loaded {
		fmt.Fprintf(&proc, "%s 16384 0 - Live 0x0\n", m)
	}
	for p, c := range map[string]string{
		"/proc/sys/kernel/osrelease":               rel + "\n",
		"/proc/modules":                            proc.String(),
		"/lib/modules/" + rel + "/modules.dep":     fakeDep,
		"/lib/modules/" + rel + "/modules.alias":   fakeAlias,
		"/lib/modules/" + rel + "/modules.builtin": "kernel/fs/ext4/ext4.ko\n",
	} {
		if err := fs.WriteFileAtomic(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.MkdirAll("/sys/module/unix", 0o755); err != nil {
		t.Fatal(err)
	}
	return fs
}

// recorder records the loads (file base name and parameters) and removals.
type recorder struct {
	loads   []string
	removed []string
	fail    map[string]error
}

func (r *recorder) LoadModule(path, params string) error {
	base := path[strings.LastIndex(path, "/")+1:]
	if err := r.fail[base]; err != nil {
		return err
	}
	r.loads = append(r.loads, strings.TrimSpace(base+" "+params))
	return nil
}

func (r *recorder) RemoveModule(name string) error {
	r.removed = append(r.removed, name)
	return nil
}

func TestLoaderLoad(t *testing.T) {
	cases := []struct {
		name   string
		loaded []string
		want   string // the loads, in order
		err    string // "" or a substring
	}{
		{name: "veth", want: "veth.ko"},
		// The kernel asks for aliases: request_module("rtnl-link-%s") for
		// `ip link add type veth`, "fs-%s" for a mount, "net-pf-%d-proto-%d".
		{name: "rtnl-link-veth", want: "veth.ko"},
		{name: "fs-overlay", want: "overlay.ko"},
		{name: "net-pf-16-proto-12", want: "nfnetlink.ko"},
		{name: "net_pf_16_proto_12", want: "nfnetlink.ko"},
		// xt_* targets and matches are asked for as ipt_*/ip6t_*; the
		// dependencies load first, from the end of the modules.dep line.
		{name: "ipt_MASQUERADE", want: "libcrc32c.ko nf_defrag_ipv4.ko nf_defrag_ipv6.ko nf_conntrack.ko nf_nat.ko xt_MASQUERADE.ko"},
		{name: "ipt_MASQUERADE", loaded: []string{"nf_conntrack", "libcrc32c", "nf_defrag_ipv4", "nf_defrag_ipv6"}, want: "nf_nat.ko xt_MASQUERADE.ko"},
		{name: "nft-expr-ct", loaded: []string{"nfnetlink"}, want: "libcrc32c.ko nf_defrag_ipv4.ko nf_defrag_ipv6.ko nf_conntrack.ko nf_tables.ko nft_ct.ko"},
		{name: "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", want: "virtio_pci.ko"},
		{name: "veth", loaded: []string{"veth"}, want: ""},
		{name: "ext4", want: ""}, // modules.builtin
		{name: "unix", want: ""}, // /sys/module only
		{name: "nosuch", err: "nosuch: module not found in /lib/modules/" + rel},
		{name: "rtnl-link-nosuch", err: "module not found"},
	}
	for _, c := range cases {
		r := &recorder{}
		l := NewLoader(node(t, c.loaded...), r)
		err := l.Load(c.name)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrNotFound) {
				t.Errorf("Load(%q) = %v, want an ErrNotFound containing %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Load(%q): %v", c.name, err)
			continue
		}
		if got := strings.Join(r.loads, " "); got != c.want {
			t.Errorf("Load(%q) with %v loaded:\n got  %s\n want %s", c.name, c.loaded, got, c.want)
		}
	}
}

func TestLoaderLoadError(t *testing.T) {
	r := &recorder{fail: map[string]error{"nf_nat.ko": fmt.Errorf("finit_module: exec format error")}}
	l := NewLoader(node(t), r)
	err := l.Load("xt_MASQUERADE")
	if err == nil || !strings.Contains(err.Error(), "nf_nat (for xt_MASQUERADE): finit_module: exec format error") {
		t.Errorf("err = %v, want the failing dependency named", err)
	}
	if got, want := strings.Join(r.loads, " "), "libcrc32c.ko nf_defrag_ipv4.ko nf_defrag_ipv6.ko nf_conntrack.ko"; got != want {
		t.Errorf("loads = %q, want %q (stop at the failure)", got, want)
	}
}

func TestLoaderNoTables(t *testing.T) {
	fs := host.FS{Root: t.TempDir()}
	fs.WriteFileAtomic("/proc/sys/kernel/osrelease", []byte(rel+"\n"), 0o644)
	fs.MkdirAll("/sys/module/ext4", 0o755)
	l := NewLoader(fs, &recorder{})
	if err := l.Load("ext4"); err != nil {
		t.Errorf("built-in module without modules.dep: %v", err)
	}
	if err := l.Load("veth"); err == nil || !strings.Contains(err.Error(), "modules.dep") {
		t.Errorf("err = %v, want one naming modules.dep", err)
	}
}

func TestAliasLookup(t *testing.T) {
	as := Aliases{{"net-pf-16-proto-12", "nfnetlink"}, {"char-major-10-[0-9]*", "misc_x"}, {"fs-overlay", "overlay"}, {"fs-overlay", "overlay"}}
	for name, want := range map[string]string{
		"net-pf-16-proto-12": "nfnetlink",
		"net_pf_16-proto_12": "nfnetlink",
		"char-major-10-7":    "misc_x",
		"char-major-10-x":    "",
		"fs-overlay":         "overlay",
		"fs-overlayx":        "",
	} {
		if got := strings.Join(as.Lookup(name), " "); got != want {
			t.Errorf("Lookup(%q) = %q, want %q", name, got, want)
		}
	}
}
