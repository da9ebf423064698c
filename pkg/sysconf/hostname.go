package sysconf

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/phase"
)

// Files the hostname phase owns.
const (
	HostnameFile = "/etc/hostname"
	HostsFile    = "/etc/hosts"
)

// HostnameKernel sets the running kernel's host name; host.Linux
// implements it.
type HostnameKernel interface {
	Hostname() (string, error)
	SetHostname(name string) error
}

// HostnamePlan is what the hostname phase writes.
type HostnamePlan struct {
	Name     string
	Hostname []byte // /etc/hostname
	Hosts    []byte // /etc/hosts
}

// ChooseHostname picks the node name: configured, else current (from
// /etc/hostname), else fallback.
func ChooseHostname(configured, current, fallback string) string {
	configured = strings.TrimSuffix(strings.TrimSpace(configured), ".")
	if configured != "" {
		return configured
	}
	if c := strings.TrimSpace(current); c != "" {
		return c
	}
	return fallback
}

// PlanHostname computes /etc/hostname and /etc/hosts for name, keeping the
// lines of hosts that it does not own.
func PlanHostname(name string, hosts []byte) HostnamePlan {
	own := "127.0.1.1\t" + name
	if short, _, ok := strings.Cut(name, "."); ok {
		own += " " + short
	}
	var ls []string
	if s := strings.TrimRight(string(hosts), "\n"); s != "" {
		ls = strings.Split(s, "\n")
	}
	var out []string
	at, v4, v6, lastLoop := -1, false, false, -1
	for _, l := range ls {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "127.0.1.1" {
			if at < 0 {
				at = len(out)
			}
			continue
		}
		if len(f) > 1 && (f[0] == "127.0.0.1" || f[0] == "::1") {
			for _, n := range f[1:] {
				if n == "localhost" {
					if f[0] == "::1" {
						v6 = true
					} else {
						v4 = true
					}
				}
			}
			lastLoop = len(out)
		}
		out = append(out, l)
	}
	var head []string
	if !v4 {
		head = append(head, "127.0.0.1\tlocalhost")
	}
	if !v6 {
		head = append(head, "::1\tlocalhost ip6-localhost ip6-loopback")
	}
	switch {
	case at >= 0:
		at += len(head)
	case lastLoop >= 0:
		at = lastLoop + 1 + len(head)
	default:
		at = len(head)
	}
	out = append(head, out...)
	out = append(out[:at], append([]string{own}, out[at:]...)...)
	return HostnamePlan{
		Name:     name,
		Hostname: []byte(name + "\n"),
		Hosts:    []byte(strings.Join(out, "\n") + "\n"),
	}
}

// RandomHostname is the name of a node without one: "keso-" and six hex
// digits.
func RandomHostname() string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "keso"
	}
	return "keso-" + hex.EncodeToString(b[:])
}

// Hostname runs the hostname phase and returns the node's name.
func Hostname(cfg *cloudconfig.Config, fsys FS, k HostnameKernel, rec *phase.Recorder) string {
	cur, err := readOptional(fsys, HostnameFile)
	if err != nil {
		rec.Fail("", err)
	}
	hosts, err := readOptional(fsys, HostsFile)
	if err != nil {
		rec.Fail("", err)
		hosts = nil
	}
	fallback := ""
	if cfg.Hostname == "" && strings.TrimSpace(string(cur)) == "" {
		fallback = RandomHostname()
	}
	plan := PlanHostname(ChooseHostname(cfg.Hostname, string(cur), fallback), hosts)
	at := ""
	if cfg.Hostname != "" {
		at = "hostname"
	}
	writeIfChanged(fsys, HostnameFile, cur, plan.Hostname, 0o644, at, plan.Name, rec)
	writeIfChanged(fsys, HostsFile, hosts, plan.Hosts, 0o644, at, "127.0.1.1 "+plan.Name, rec)
	if k != nil {
		running, err := k.Hostname()
		if err != nil || running != plan.Name {
			if err := k.SetHostname(plan.Name); err != nil {
				rec.Fail(at, err)
			} else {
				rec.Change("set", "hostname", plan.Name)
			}
		}
	}
	return plan.Name
}

// writeIfChanged writes data to p unless old already equals it.
func writeIfChanged(fsys FS, p string, old, data []byte, mode uint32, at, detail string, rec *phase.Recorder) {
	if bytes.Equal(old, data) {
		return
	}
	if err := fsys.WriteFileAtomic(p, data, fsMode(mode)); err != nil {
		rec.Fail(at, err)
		return
	}
	rec.Change("write", p, detail)
}
