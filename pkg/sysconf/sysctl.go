package sysconf

import (
	"fmt"
	"sort"
	"strings"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/phase"
)

// SysctlWrite is one sysctl to set.
type SysctlWrite struct {
	Name  string // as configured
	Path  string // /proc/sys/…
	Value string
}

// SysctlPath maps a sysctl name to its /proc/sys file, as sysctl(8) does:
// with '/' as the first separator the name is a path; otherwise dots
// separate components and a '/' is a dot inside one (VLAN interfaces).
func SysctlPath(name string) string {
	i := strings.IndexAny(name, "./")
	if i >= 0 && name[i] == '/' {
		return "/proc/sys/" + strings.TrimLeft(name, "/")
	}
	var b strings.Builder
	for _, r := range name {
		switch r {
		case '.':
			b.WriteByte('/')
		case '/':
			b.WriteByte('.')
		default:
			b.WriteRune(r)
		}
	}
	return "/proc/sys/" + b.String()
}

// PlanSysctl lists the writes for the configured sysctls, sorted by name.
func PlanSysctl(m map[string]string) []SysctlWrite {
	out := make([]SysctlWrite, 0, len(m))
	for k, v := range m {
		out = append(out, SysctlWrite{Name: k, Path: SysctlPath(k), Value: strings.TrimSpace(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// sameValue compares sysctl values the way the kernel prints them
// (fields separated by tabs or spaces).
func sameValue(a, b string) bool {
	return strings.Join(strings.Fields(a), " ") == strings.Join(strings.Fields(b), " ")
}

// Sysctl runs the sysctl phase.
func Sysctl(cfg *cloudconfig.Config, fsys FS, rec *phase.Recorder) {
	for _, w := range PlanSysctl(cfg.Keso.Sysctl) {
		at := "keso.sysctl." + w.Name
		cur, err := fsys.ReadFile(w.Path)
		if err != nil {
			rec.Fail(at, fmt.Errorf("sysctl %s: no such setting in this kernel (%w)", w.Name, err))
			continue
		}
		if sameValue(string(cur), w.Value) {
			continue
		}
		if err := fsys.WriteInPlace(w.Path, []byte(w.Value+"\n")); err != nil {
			rec.Fail(at, fmt.Errorf("sysctl %s=%s: %w", w.Name, w.Value, err))
			continue
		}
		rec.Change("set", w.Name, w.Value)
	}
}
