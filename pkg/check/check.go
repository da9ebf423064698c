// Package check tells whether the running kernel and the booted system can
// run k3s: kernel modules present or loadable, cgroup v2 and its
// controllers, shared mount propagation of /, a netfilter backend in the
// kernel, and a writable, persistent /var. Every check is a pure function of
// files under a host.FS root (/proc, /sys, /lib/modules), so tests run on a
// fake tree; `keso check` prints the result as a table, and the boot agent
// runs it after preparing the system for k3s and records it in the status.
//
// The only write is the /var probe: a small file created and removed under
// /var/lib/keso, to prove /var is writable.
package check

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/kmod"
)

// Status of one check.
type Status string

// Statuses: a warning does not make the report fail.
const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Result is one row of the table.
type Result struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
}

// Report is the outcome of Run.
type Report struct {
	Kernel  string   `json:"kernel"`
	Results []Result `json:"results"`
}

// OK reports whether no check failed.
func (r Report) OK() bool {
	for _, res := range r.Results {
		if res.Status == Fail {
			return false
		}
	}
	return true
}

// Failed lists the names of the failed checks.
func (r Report) Failed() []string {
	var out []string
	for _, res := range r.Results {
		if res.Status == Fail {
			out = append(out, res.Name)
		}
	}
	return out
}

// WriteTable prints the report as an aligned table.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "CHECK\tRESULT\tDETAIL\n")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", res.Name, strings.ToUpper(string(res.Status)), res.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "k3s can run on this system"
	if !r.OK() {
		verdict = "k3s cannot run: " + strings.Join(r.Failed(), ", ") + " failed"
	}
	_, err := fmt.Fprintln(w, verdict)
	return err
}

// Modules k3s needs. Each must be loaded, built in, or loadable. Every
// image profile (images/*.yaml) ships all of them (a test in
// pkg/image/profile holds the profiles to these lists).
var (
	// RequiredModules: overlayfs snapshots (containerd), the veth pair of
	// every pod and the bridge it joins (flannel's cni0, the bridge CNI
	// plugin), bridged traffic seen by iptables (kube-proxy, flannel),
	// connection tracking, and flannel's default VXLAN backend.
	RequiredModules = []string{"overlay", "veth", "bridge", "br_netfilter", "nf_conntrack", "vxlan"}
	// NetfilterFamilies: k3s's bundled iptables works with either the
	// nf_tables kernel API or the legacy ip_tables one; one family is
	// enough.
	NetfilterFamilies = map[string][]string{
		"nft":    {"nf_tables", "nft_compat", "nft_chain_nat"},
		"legacy": {"ip_tables", "iptable_nat", "iptable_filter"},
	}
	// OptionalModules are matches, targets and expressions kube-proxy
	// (iptables, nftables and IPVS modes), flannel and the network policy
	// controller use, and tun (VPN CNIs). The kernel autoloads them through
	// /sbin/modprobe; the boot agent also loads them up front. A missing
	// one is a warning.
	OptionalModules = []string{
		"nf_nat", "nfnetlink", "iptable_mangle",
		"xt_conntrack", "xt_comment", "xt_mark", "xt_MASQUERADE",
		"xt_addrtype", "xt_nat", "xt_multiport", "xt_statistic", "xt_physdev", "xt_tcpudp",
		"ip_set", "xt_set", "ip_set_hash_ip", "ip_set_hash_net",
		"ip6_tables", "ip6table_nat", "ip6table_filter", "ip6table_mangle",
		"nft_ct", "nft_masq", "nft_nat",
		"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "tun",
	}
)

// K3sModules lists every module of RequiredModules, NetfilterFamilies and
// OptionalModules once, in that order.
func K3sModules() []string {
	var out []string
	add := func(ms []string) {
		for _, m := range ms {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	add(RequiredModules)
	for _, fam := range NetfilterOrder {
		add(NetfilterFamilies[fam])
	}
	add(OptionalModules)
	return out
}

// NetfilterOrder is the order families are tried in.
var NetfilterOrder = []string{"nft", "legacy"}

// CgroupRequired and CgroupWanted are the cgroup v2 controllers k3s (the
// kubelet) needs, and those it uses when present.
var (
	CgroupRequired = []string{"cpu", "memory", "pids"}
	CgroupWanted   = []string{"cpuset", "io"}
)

// Run performs every check against the system under fsys.
func Run(fsys host.FS) Report {
	var r Report
	add := func(name string, st Status, format string, args ...any) {
		r.Results = append(r.Results, Result{Name: name, Status: st, Detail: fmt.Sprintf(format, args...)})
	}
	rel, err := fsys.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		add("kernel", Fail, "cannot tell the kernel release: %s", short("/proc/sys/kernel/osrelease", err))
	} else {
		r.Kernel = strings.TrimSpace(string(rel))
		add("kernel", Pass, "%s", r.Kernel)
	}
	mods := LoadModuleInfo(fsys, r.Kernel)

	for _, m := range RequiredModules {
		st, how := mods.State(m)
		if st == Missing {
			add("module "+m, Fail, "%s", how)
		} else {
			add("module "+m, Pass, "%s", how)
		}
	}
	netfilter := ""
	for _, fam := range NetfilterOrder {
		if missing := mods.MissingOf(NetfilterFamilies[fam]); len(missing) == 0 {
			netfilter = fam
			break
		}
	}
	if netfilter != "" {
		add("netfilter", Pass, "%s (%s)", netfilter, strings.Join(NetfilterFamilies[netfilter], ", "))
	} else {
		add("netfilter", Fail, "neither nf_tables (%s) nor ip_tables (%s) is available",
			strings.Join(NetfilterFamilies["nft"], ", "), strings.Join(NetfilterFamilies["legacy"], ", "))
	}
	r.Results = append(r.Results, modprobe(fsys))
	if missing := mods.MissingOf(OptionalModules); len(missing) > 0 {
		add("modules (optional)", Warn, "missing %s: some Services or NetworkPolicies may not work", strings.Join(missing, ", "))
	} else {
		add("modules (optional)", Pass, "all %d present", len(OptionalModules))
	}

	r.Results = append(r.Results, cgroups(fsys))

	mounts, err := ReadMountInfo(fsys)
	if err != nil {
		add("mount propagation /", Fail, "%s", short("/proc/self/mountinfo", err))
		add("/var persistent", Fail, "%s", short("/proc/self/mountinfo", err))
	} else {
		r.Results = append(r.Results, propagation(mounts), varPersistent(mounts))
	}
	r.Results = append(r.Results, varWritable(fsys, mounts))
	return r
}

// modprobe checks that the kernel can autoload modules: it runs the
// program named in /proc/sys/kernel/modprobe (keso's /sbin/modprobe is
// keso-init) for a pod's veth pair, the xt_* matches and nft_* expressions
// kube-proxy's rules name, and more.
func modprobe(fsys host.FS) Result {
	const name, file = "module autoload", "/proc/sys/kernel/modprobe"
	b, err := fsys.ReadFile(file)
	if err != nil {
		return Result{name, Warn, "cannot tell how the kernel loads modules: " + short(file, err)}
	}
	p := strings.TrimSpace(string(b))
	if p == "" {
		return Result{name, Fail, file + " is empty: the kernel cannot load the modules pods need (veth, xt_*, nft_*) on demand; write /sbin/modprobe into it"}
	}
	fi, err := fsys.Stat(p)
	if err != nil {
		return Result{name, Fail, fmt.Sprintf("the kernel runs %s (%s) to load modules on demand, but %s; pods cannot get their veth pair until veth is loaded", p, file, short(p, err))}
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return Result{name, Fail, fmt.Sprintf("the kernel runs %s (%s) to load modules on demand, but it is not an executable file (mode %s)", p, file, fi.Mode())}
	}
	return Result{name, Pass, p + " (named in " + file + ")"}
}

func cgroups(fsys host.FS) Result {
	const name = "cgroup v2"
	b, err := fsys.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		return Result{name, Fail, "no cgroup v2 at /sys/fs/cgroup (cgroup.controllers unreadable): mount -t cgroup2 none /sys/fs/cgroup"}
	}
	have := strings.Fields(string(b))
	var missReq, missWant []string
	for _, c := range CgroupRequired {
		if !slices.Contains(have, c) {
			missReq = append(missReq, c)
		}
	}
	for _, c := range CgroupWanted {
		if !slices.Contains(have, c) {
			missWant = append(missWant, c)
		}
	}
	switch {
	case len(missReq) > 0:
		return Result{name, Fail, "controllers missing: " + strings.Join(missReq, " ") + " (have: " + strings.Join(have, " ") + ")"}
	case len(missWant) > 0:
		return Result{name, Warn, "controllers missing: " + strings.Join(missWant, " ") + " (have: " + strings.Join(have, " ") + ")"}
	}
	return Result{name, Pass, "controllers " + strings.Join(have, " ")}
}

func propagation(mounts []Mount) Result {
	const name = "mount propagation /"
	m, ok := Containing(mounts, "/")
	if !ok {
		return Result{name, Fail, "/ is not in /proc/self/mountinfo"}
	}
	for _, f := range m.Optional {
		if strings.HasPrefix(f, "shared:") {
			return Result{name, Pass, "shared (" + f + ")"}
		}
	}
	return Result{name, Fail, "/ is private; k3s (kubelet volume mounts) needs it shared: mount --make-rshared /"}
}

// rancherDir is k3s's data; what matters is the mount that holds it (the
// state partition's /var, or a data disk mounted there).
const rancherDir = "/var/lib/rancher"

func varPersistent(mounts []Mount) Result {
	const name = "/var persistent"
	m, ok := Containing(mounts, rancherDir)
	if !ok {
		return Result{name, Fail, "no mount holds " + rancherDir}
	}
	switch m.FSType {
	case "tmpfs", "ramfs":
		return Result{name, Warn, fmt.Sprintf("%s on %s: %s is lost at reboot (expected on live and netboot systems)", m.FSType, m.MountPoint, rancherDir)}
	}
	return Result{name, Pass, fmt.Sprintf("%s is on %s %s (mounted at %s)", rancherDir, m.FSType, m.Source, m.MountPoint)}
}

// probe is the file written and removed to prove /var is writable.
const probe = "/var/lib/keso/.check-write"

func varWritable(fsys host.FS, mounts []Mount) Result {
	const name = "/var writable"
	if m, ok := Containing(mounts, "/var"); ok && slices.Contains(strings.Split(m.Options, ","), "ro") {
		return Result{name, Fail, fmt.Sprintf("%s is mounted read-only", m.MountPoint)}
	}
	if err := fsys.WriteFileAtomic(probe, []byte("keso check\n"), 0o600); err != nil {
		return Result{name, Fail, short(probe, err)}
	}
	if err := fsys.Remove(probe); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{name, Fail, short(probe, err)}
	}
	return Result{name, Pass, "wrote and removed " + probe}
}

// short describes err on the node's path p, without the host root that
// host.FS puts in its errors.
func short(p string, err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return p + ": " + pe.Err.Error()
	}
	return p + ": " + err.Error()
}

// ModuleState says whether a module can be used.
type ModuleState int

// Module states, best first.
const (
	Missing ModuleState = iota
	Loadable
	BuiltIn
	Loaded
)

// ModuleInfo is what /proc/modules, /sys/module and /lib/modules/RELEASE
// say about the kernel's modules. Names use underscores.
type ModuleInfo struct {
	Release  string
	loaded   map[string]bool
	builtin  map[string]bool
	loadable map[string]string // name → path in modules.dep
	sysfs    host.FS
}

// LoadModuleInfo reads the module tables under fsys for kernel release.
// Missing files leave their table empty.
func LoadModuleInfo(fsys host.FS, release string) ModuleInfo {
	mi := ModuleInfo{Release: release, loadable: map[string]string{}, sysfs: fsys}
	mi.loaded, _ = kmod.ReadLoaded(fsys)
	if release == "" {
		mi.builtin = map[string]bool{}
		return mi
	}
	t, _ := kmod.ReadTablesAt(fsys, release) // missing tables stay empty
	mi.builtin = t.Builtin
	for n, e := range t.Deps {
		mi.loadable[n] = e.Path
	}
	return mi
}

func norm(s string) string { return kmod.ModuleName(s) }

// State says how module name is available, with a human detail.
func (mi ModuleInfo) State(name string) (ModuleState, string) {
	n := norm(name)
	switch {
	case mi.loaded[n]:
		return Loaded, "loaded"
	case mi.builtin[n]:
		return BuiltIn, "built into the kernel"
	case mi.loadable[n] != "":
		return Loadable, "loadable (" + mi.loadable[n] + ")"
	}
	// Built-in modules with parameters show up in /sys/module even when
	// modules.builtin is not there.
	if _, err := mi.sysfs.Stat("/sys/module/" + n); err == nil {
		return BuiltIn, "built into the kernel (/sys/module)"
	}
	where := "/lib/modules/" + mi.Release + "/modules.dep"
	if mi.Release == "" {
		where = "modules.dep (unknown kernel release)"
	}
	return Missing, "missing: not loaded, not built in, not in " + where
}

// MissingOf returns the names among names that are missing.
func (mi ModuleInfo) MissingOf(names []string) []string {
	var out []string
	for _, n := range names {
		if st, _ := mi.State(n); st == Missing {
			out = append(out, n)
		}
	}
	return out
}
