package cloudconfig

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

// validator checks values and clears the ones it rejects, so that what is
// left in the Config is safe to apply.
type validator struct {
	d     *decoder
	diags Diagnostics
}

// fail reports an error at path (positioned at the value that path names,
// or at the nearest parent that has a position).
func (v *validator) fail(p, format string, args ...any) {
	n := v.node(p)
	file, line, col := "", 0, 0
	if n != nil {
		file, line, col = v.d.origin.position(n)
	}
	v.diags = append(v.diags, Diagnostic{File: file, Line: line, Column: col, Severity: Error, Path: p, Message: fmt.Sprintf(format, args...)})
}

// renumber moves the positions recorded for base[old]… to base[new]… after
// keep dropped entries, so that Result.Position("write_files[0]") names
// the entry that is now first in the Config, and forgets dropped entries.
func (v *validator) renumber(base string, renum map[int]int) {
	for _, m := range []map[string]*yaml.Node{v.d.values, v.d.keys} {
		moved := map[string]*yaml.Node{}
		for k, n := range m {
			rest, ok := strings.CutPrefix(k, base+"[")
			if !ok {
				continue
			}
			idx, tail, ok := strings.Cut(rest, "]")
			if !ok {
				continue
			}
			old, err := strconv.Atoi(idx)
			if err != nil {
				continue
			}
			delete(m, k)
			if nw, kept := renum[old]; kept {
				moved[fmt.Sprintf("%s[%d]%s", base, nw, tail)] = n
			}
		}
		for k, n := range moved {
			m[k] = n
		}
	}
}

// failKey reports an error at the key of a map entry (a sysctl or label
// name), rather than at its value.
func (v *validator) failKey(p, format string, args ...any) {
	k, ok := v.d.keys[p]
	if !ok {
		v.fail(p, format, args...)
		return
	}
	file, line, col := v.d.origin.position(k)
	v.diags = append(v.diags, Diagnostic{File: file, Line: line, Column: col, Severity: Error, Path: p, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) node(p string) *yaml.Node {
	for p != "" {
		if n, ok := v.d.values[p]; ok {
			return n
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return nil
}

func validate(c *Config, d *decoder) Diagnostics {
	v := &validator{d: d}
	v.config(c)
	return v.diags
}

// keep returns the elements of list for which ok(path, element) is true.
// An element that already failed to decode is dropped without a second
// message.
func keep[T any](v *validator, list []T, base string, ok func(p string, x *T) bool) []T {
	if list == nil {
		return nil
	}
	out := list[:0:0]
	renum := map[int]int{} // old index → new index of the entries kept
	for i := range list {
		p := fmt.Sprintf("%s[%d]", base, i)
		if v.d.diags.ErrorAt(p) {
			continue
		}
		if ok(p, &list[i]) {
			renum[i] = len(out)
			out = append(out, list[i])
		}
	}
	if len(out) != len(list) {
		v.renumber(base, renum)
	}
	return out
}

func (v *validator) config(c *Config) {
	if c.Hostname != "" && !v.hostname("hostname", c.Hostname) {
		c.Hostname = ""
	}
	c.SSHAuthorizedKeys = keep(v, c.SSHAuthorizedKeys, "ssh_authorized_keys", v.authorizedKey)
	c.WriteFiles = keep(v, c.WriteFiles, "write_files", v.file)
	c.InitCmd = keep(v, c.InitCmd, "init_cmd", v.command)
	c.BootCmd = keep(v, c.BootCmd, "boot_cmd", v.command)
	c.RunCmd = keep(v, c.RunCmd, "run_cmd", v.command)
	v.system(&c.Keso)
}

var hostnameLabel = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)

func validHostname(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !hostnameLabel.MatchString(l) {
			return false
		}
	}
	return true
}

func (v *validator) hostname(p, s string) bool {
	if validHostname(s) {
		return true
	}
	v.fail(p, "%s: %q is not a valid host name (RFC 1123: letters, digits and '-', labels of 1–63 characters, not starting or ending with '-')", p, s)
	return false
}

func (v *validator) authorizedKey(p string, k *string) bool {
	s := strings.TrimSpace(*k)
	switch {
	case strings.HasPrefix(s, "github:") || strings.HasPrefix(s, "gitlab:"):
		user := s[7:]
		if !regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,38}$`).MatchString(user) {
			v.fail(p, "%s: %q is not a valid user name", p, user)
			return false
		}
		return true
	case strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://"):
		return v.url(p, s, "http", "https")
	}
	// A literal key is checked for its shape only (an options-free
	// "type data [comment]" line with a known type): the SSH phase parses
	// it fully when it writes authorized_keys, and k3OS's own documented
	// example abbreviates its key with "...".
	f := strings.Fields(s)
	if len(f) < 2 || !sshKeyTypes[f[0]] {
		v.fail(p, "%s: not an SSH public key (\"ssh-ed25519 AAAA… comment\"), github:USER, gitlab:USER or URL", p)
		return false
	}
	return true
}

var sshKeyTypes = map[string]bool{
	ssh.KeyAlgoRSA: true, ssh.KeyAlgoED25519: true, ssh.KeyAlgoECDSA256: true, ssh.KeyAlgoECDSA384: true,
	ssh.KeyAlgoECDSA521: true, ssh.KeyAlgoSKED25519: true, ssh.KeyAlgoSKECDSA256: true, ssh.KeyAlgoDSA: true,
}

var (
	octalMode = regexp.MustCompile(`^0?[0-7]{3,4}$`)
	ownerRe   = regexp.MustCompile(`^([a-z_][a-z0-9_-]*\$?|[0-9]+)(:([a-z_][a-z0-9_-]*\$?|[0-9]+))?$`)
)

// DecodeContent returns a write_files entry's bytes, decoded as its
// encoding says.
func DecodeContent(f File) ([]byte, error) {
	data := []byte(f.Content)
	switch f.Encoding {
	case "":
		return data, nil
	case "b64", "base64":
		return base64.StdEncoding.DecodeString(strings.Join(strings.Fields(f.Content), ""))
	case "gz", "gzip":
		return gunzip(data)
	case "gz+b64", "gzip+base64", "gz+base64", "gzip+b64":
		raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(f.Content), ""))
		if err != nil {
			return nil, err
		}
		return gunzip(raw)
	}
	return nil, fmt.Errorf("unknown encoding %q (want one of \"\", b64, base64, gz, gzip, gz+b64, gzip+base64)", f.Encoding)
}

func gunzip(data []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out bytes.Buffer
	if _, err := out.ReadFrom(r); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func (v *validator) file(p string, f *File) bool {
	ok := true
	switch {
	case f.Path == "":
		v.fail(p, "%s.path: missing; every write_files entry needs an absolute path", p)
		ok = false
	case !v.absPath(p+".path", f.Path):
		ok = false
	}
	if f.Permissions != "" && !octalMode.MatchString(f.Permissions) {
		v.fail(p+".permissions", "%s.permissions: %q is not an octal mode such as \"0644\"", p, f.Permissions)
		ok = false
	}
	if f.Owner != "" && !ownerRe.MatchString(f.Owner) {
		v.fail(p+".owner", "%s.owner: %q is not user, user:group or uid:gid", p, f.Owner)
		ok = false
	}
	if _, err := DecodeContent(*f); err != nil {
		at := p + ".content"
		if !strings.Contains(err.Error(), "unknown encoding") {
			v.fail(at, "%s.content: cannot decode as %s: %v", p, f.Encoding, err)
		} else {
			v.fail(p+".encoding", "%s.encoding: %v", p, err)
		}
		ok = false
	}
	return ok
}

// absPath accepts a clean absolute path that does not climb out of the root.
func (v *validator) absPath(p, s string) bool {
	if !strings.HasPrefix(s, "/") {
		v.fail(p, "%s: %q is not an absolute path (it must start with /)", p, s)
		return false
	}
	for _, part := range strings.Split(s, "/") {
		if part == ".." {
			v.fail(p, "%s: %q must not contain '..'", p, s)
			return false
		}
	}
	if strings.ContainsRune(s, 0) {
		v.fail(p, "%s: path contains a NUL byte", p)
		return false
	}
	return true
}

func (v *validator) command(p string, c *Command) bool {
	if strings.TrimSpace(c.Shell) == "" && len(c.Argv) == 0 {
		v.fail(p, "%s: empty command", p)
		return false
	}
	return true
}

// DataSources is the set of names data_sources accepts.
var DataSources = []string{"cdrom", "nocloud", "configdrive", "openstack", "aws", "ec2", "http", "state",
	"gcp", "digitalocean", "hetzner", "packet", "equinix", "equinixmetal", "scaleway", "vultr"}

var (
	moduleName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	moduleArg  = regexp.MustCompile(`^[A-Za-z0-9_.-]+(=\S*)?$`)
	sysctlName = regexp.MustCompile(`^[a-z0-9_]+([./][A-Za-z0-9_:-]+)+$`)
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelName  = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$`)
	labelValue = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	taintRe    = regexp.MustCompile(`^([^=:\s]+)(=([^:\s]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$`)
	ttyRe      = regexp.MustCompile(`^(tty[A-Za-z0-9]+|hvc[0-9]+)(,[0-9]+)?$`)
	k3sVersion = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-rc[0-9]+)?(\+k3s[0-9]+)?$`)
	ifName     = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,15}\*?$`)
)

func (v *validator) system(s *System) {
	const b = "keso"
	s.DataSources = keep(v, s.DataSources, b+".data_sources", func(p string, x *string) bool {
		for _, d := range DataSources {
			if *x == d {
				return true
			}
		}
		msg := fmt.Sprintf("%s: unknown data source %q (known: %s)", p, *x, strings.Join(DataSources, ", "))
		if sg := suggest(*x, DataSources); sg != "" {
			msg += fmt.Sprintf("; did you mean %q?", sg)
		}
		v.fail(p, "%s", msg)
		return false
	})
	s.Modules = keep(v, s.Modules, b+".modules", func(p string, x *string) bool {
		f := strings.Fields(*x)
		if len(f) == 0 || !moduleName.MatchString(f[0]) {
			v.fail(p, "%s: %q is not a module name with optional parameters (\"name key=value\")", p, *x)
			return false
		}
		for _, a := range f[1:] {
			if !moduleArg.MatchString(a) {
				v.fail(p, "%s: module parameter %q is not key=value", p, a)
				return false
			}
		}
		return true
	})
	for k, val := range s.Sysctl {
		p := b + ".sysctl." + k
		if !sysctlName.MatchString(k) {
			v.failKey(p, "%s: %q is not a sysctl name (like net.ipv4.ip_forward)", p, k)
			delete(s.Sysctl, k)
		} else if strings.TrimSpace(val) == "" {
			v.fail(p, "%s: empty value", p)
			delete(s.Sysctl, k)
		}
	}
	s.NTPServers = keep(v, s.NTPServers, b+".ntp_servers", func(p string, x *string) bool {
		host := *x
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if _, err := netip.ParseAddr(host); err == nil || validHostname(host) {
			return true
		}
		v.fail(p, "%s: %q is not a host name or IP address", p, *x)
		return false
	})
	s.DNSNameservers = keep(v, s.DNSNameservers, b+".dns_nameservers", v.ip)
	s.Wifi = keep(v, s.Wifi, b+".wifi", v.wifi)
	if s.ServerURL != "" && !v.url(b+".server_url", s.ServerURL, "https", "http") {
		s.ServerURL = ""
	}
	for k, val := range s.Labels {
		p := b + ".labels." + k
		if !validLabelKey(k) || len(val) > 63 || !labelValue.MatchString(val) {
			v.failKey(p, "%s: %q=%q is not a valid Kubernetes label", p, k, val)
			delete(s.Labels, k)
		}
	}
	s.Taints = keep(v, s.Taints, b+".taints", func(p string, x *string) bool {
		if taintRe.MatchString(*x) {
			return true
		}
		v.fail(p, "%s: %q is not a taint (key=value:NoSchedule|PreferNoSchedule|NoExecute)", p, *x)
		return false
	})
	for k := range s.Environment {
		if !envName.MatchString(k) {
			v.failKey(b+".environment."+k, "%s: %q is not a valid environment variable name", b+".environment", k)
			delete(s.Environment, k)
		}
	}
	if s.Install != nil {
		v.install(b+".install", s.Install)
	}
	if s.ConfigURL != "" && !v.url(b+".config_url", s.ConfigURL, "http", "https") {
		s.ConfigURL = ""
	}
	if s.ReportURL != "" && !v.url(b+".report_url", s.ReportURL, "http", "https") {
		s.ReportURL = ""
	}
	if s.Network != nil {
		v.network(b+".network", s.Network)
	}
	s.Disks = keep(v, s.Disks, b+".disks", v.disk)
	if s.Proxy != nil {
		v.proxy(b+".proxy", s.Proxy)
	}
	if s.K3s != nil {
		v.k3s(b+".k3s", s.K3s, s.ServerURL)
	}
	if s.SSH != nil {
		v.ssh(b+".ssh", s.SSH)
	}
	if s.Upgrade != nil {
		if s.Upgrade.Channel != "" && !v.url(b+".upgrade.channel", s.Upgrade.Channel, "https", "http", "file") {
			s.Upgrade.Channel = ""
		}
		if t := s.Upgrade.HealthTimeout; t != "" {
			if d, err := time.ParseDuration(t); err != nil || d <= 0 {
				v.fail(b+".upgrade.health_timeout", "%s.upgrade.health_timeout: %q is not a positive duration like 10m", b, t)
				s.Upgrade.HealthTimeout = ""
			}
		}
		if t := s.Upgrade.HealthStable; t != "" {
			d, err := time.ParseDuration(t)
			timeout := DefaultHealthTimeout
			if to, err := time.ParseDuration(s.Upgrade.HealthTimeout); err == nil && to > 0 {
				timeout = to
			}
			switch {
			case err != nil || d <= 0:
				v.fail(b+".upgrade.health_stable", "%s.upgrade.health_stable: %q is not a positive duration like 2m", b, t)
				s.Upgrade.HealthStable = ""
			case d >= timeout:
				v.fail(b+".upgrade.health_stable", "%s.upgrade.health_stable: %s is not shorter than health_timeout (%s): no trial could ever commit; lower it or raise health_timeout", b, d, timeout)
				s.Upgrade.HealthStable = ""
			}
		}
		s.Upgrade.PublicKeys = keep(v, s.Upgrade.PublicKeys, b+".upgrade.public_keys", func(p string, x *string) bool {
			if _, err := ParsePublicKey(*x); err != nil {
				v.fail(p, "%s: %v", p, err)
				return false
			}
			return true
		})
	}
}

// ParsePublicKey decodes an ed25519 public key written as base64 (32 bytes),
// optionally prefixed "ed25519:".
func ParsePublicKey(s string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "ed25519:"))
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("%q is not an ed25519 public key (base64 of 32 bytes)", truncate(s, 60))
	}
	return raw, nil
}

func validLabelKey(k string) bool {
	prefix, name, ok := strings.Cut(k, "/")
	if !ok {
		name, prefix = prefix, ""
	}
	if prefix != "" && !validHostname(prefix) {
		return false
	}
	return labelName.MatchString(name)
}

func (v *validator) ip(p string, x *string) bool {
	if _, err := netip.ParseAddr(*x); err != nil {
		v.fail(p, "%s: %q is not an IP address", p, *x)
		return false
	}
	return true
}

func (v *validator) cidr(p string, x *string) bool {
	if _, err := netip.ParsePrefix(*x); err != nil {
		msg := fmt.Sprintf("%s: %q is not an address in CIDR form (like 192.168.1.10/24)", p, *x)
		if _, e2 := netip.ParseAddr(*x); e2 == nil {
			msg += "; add the prefix length"
		}
		v.fail(p, "%s", msg)
		return false
	}
	return true
}

func (v *validator) url(p, s string, schemes ...string) bool {
	u, err := url.Parse(s)
	if err == nil {
		for _, sc := range schemes {
			if u.Scheme == sc && (u.Host != "" || sc == "file") {
				return true
			}
		}
	}
	v.fail(p, "%s: %q is not a %s URL", p, s, strings.Join(schemes, "/"))
	return false
}

func (v *validator) wifi(p string, w *Wifi) bool {
	if w.Name == "" || len(w.Name) > 32 {
		v.fail(p+".name", "%s.name: an SSID of 1–32 bytes is required", p)
		return false
	}
	n := len(w.Passphrase)
	if n == 0 || (n >= 8 && n <= 63) {
		return true
	}
	if n == 64 {
		if _, err := hex.DecodeString(w.Passphrase); err == nil {
			return true
		}
	}
	v.fail(p+".passphrase", "%s.passphrase: a WPA passphrase has 8–63 characters (or 64 hex digits)", p)
	return false
}

func (v *validator) install(p string, in *Install) {
	if in.Device != "" && !strings.HasPrefix(in.Device, "/dev/") {
		v.fail(p+".device", "%s.device: %q is not a device path under /dev", p, in.Device)
		in.Device = ""
	}
	if in.ConfigURL != "" && !strings.HasPrefix(in.ConfigURL, "/") && !v.url(p+".config_url", in.ConfigURL, "http", "https", "file") {
		in.ConfigURL = ""
	}
	if in.ISOURL != "" && !v.url(p+".iso_url", in.ISOURL, "http", "https", "file") {
		in.ISOURL = ""
	}
	if in.TTY != "" && !ttyRe.MatchString(in.TTY) {
		v.fail(p+".tty", "%s.tty: %q is not a console name like ttyS0", p, in.TTY)
		in.TTY = ""
	}
}

var macRe = regexp.MustCompile(`^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$`)

// BondModes are the bonding modes keso.network.bonds[].mode accepts.
var BondModes = []string{"balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"}

func (v *validator) network(p string, n *Network) {
	n.Interfaces = keep(v, n.Interfaces, p+".interfaces", func(ip string, i *Interface) bool {
		ok := true
		if i.Name == "" && i.MAC == "" {
			v.fail(ip, "%s: give name or mac to match the interface", ip)
			ok = false
		}
		if i.Name != "" && !ifName.MatchString(i.Name) {
			v.fail(ip+".name", "%s.name: %q is not an interface name (1–15 characters, optional trailing *)", ip, i.Name)
			ok = false
		}
		if i.MAC != "" && !macRe.MatchString(i.MAC) {
			v.fail(ip+".mac", "%s.mac: %q is not a MAC address like 52:54:00:12:34:56", ip, i.MAC)
			ok = false
		}
		return v.addressing(ip, &i.Addressing) && ok
	})
	n.VLANs = keep(v, n.VLANs, p+".vlans", func(vp string, x *VLAN) bool {
		ok := true
		if x.Link == "" {
			v.fail(vp, "%s.link: the parent interface is required", vp)
			ok = false
		}
		if x.ID < 1 || x.ID > 4094 {
			v.fail(vp+".id", "%s.id: %d is not a VLAN id (1–4094)", vp, x.ID)
			ok = false
		}
		if x.Name != "" && !ifName.MatchString(x.Name) {
			v.fail(vp+".name", "%s.name: %q is not an interface name (1–15 characters)", vp, x.Name)
			ok = false
		}
		return v.addressing(vp, &x.Addressing) && ok
	})
	n.Bonds = keep(v, n.Bonds, p+".bonds", func(bp string, x *Bond) bool {
		ok := true
		if x.Name == "" || !ifName.MatchString(x.Name) {
			v.fail(bp+".name", "%s.name: %q is not an interface name (1–15 characters)", bp, x.Name)
			ok = false
		}
		if x.Mode != "" && !contains(BondModes, x.Mode) {
			v.fail(bp+".mode", "%s.mode: %q is not a bonding mode (%s)", bp, x.Mode, strings.Join(BondModes, ", "))
			ok = false
		}
		if len(x.Interfaces) == 0 {
			v.fail(bp, "%s.interfaces: a bond needs at least one member", bp)
			ok = false
		}
		if x.MIIMon < 0 {
			v.fail(bp+".miimon", "%s.miimon: must not be negative", bp)
			ok = false
		}
		return v.addressing(bp, &x.Addressing) && ok
	})
	if n.WaitOnline != "" {
		if d, err := time.ParseDuration(n.WaitOnline); err != nil || d < 0 {
			v.fail(p+".wait_online", "%s.wait_online: %q is not a duration like 60s", p, n.WaitOnline)
			n.WaitOnline = ""
		}
	}
}

func (v *validator) addressing(p string, a *Addressing) bool {
	ok := true
	for i := range a.Addresses {
		ok = v.cidr(fmt.Sprintf("%s.addresses[%d]", p, i), &a.Addresses[i]) && ok
	}
	if a.Gateway != "" {
		ok = v.ip(p+".gateway", &a.Gateway) && ok
	}
	for i, r := range a.Routes {
		rp := fmt.Sprintf("%s.routes[%d]", p, i)
		if r.To != "default" {
			ok = v.cidr(rp+".to", &r.To) && ok
		}
		if r.Via != "" {
			ok = v.ip(rp+".via", &r.Via) && ok
		}
		if r.Metric < 0 {
			v.fail(rp+".metric", "%s.metric: must not be negative", rp)
			ok = false
		}
	}
	for i := range a.DNS {
		ok = v.ip(fmt.Sprintf("%s.dns[%d]", p, i), &a.DNS[i]) && ok
	}
	if a.MTU != 0 && (a.MTU < 68 || a.MTU > 65535) {
		v.fail(p+".mtu", "%s.mtu: %d is out of range (68–65535)", p, a.MTU)
		ok = false
	}
	return ok
}

func (v *validator) disk(p string, d *Disk) bool {
	ok := true
	if d.Device == "" && d.Label == "" {
		v.fail(p, "%s: give device or label", p)
		ok = false
	}
	if d.Device != "" && !strings.HasPrefix(d.Device, "/dev/") {
		v.fail(p+".device", "%s.device: %q is not a device path under /dev", p, d.Device)
		ok = false
	}
	if d.Filesystem != "" && d.Filesystem != "ext4" {
		v.fail(p+".filesystem", "%s.filesystem: %q is not supported (only ext4)", p, d.Filesystem)
		ok = false
	}
	if d.Mount != "" && (!v.absPath(p+".mount", d.Mount) || path.Clean(d.Mount) == "/") {
		if path.Clean(d.Mount) == "/" {
			v.fail(p+".mount", "%s.mount: cannot mount a data disk on /", p)
		}
		ok = false
	}
	if len(d.FSLabel) > 16 {
		v.fail(p+".fs_label", "%s.fs_label: %q is longer than ext4's 16 bytes", p, d.FSLabel)
		ok = false
	}
	return ok
}

func (v *validator) proxy(p string, x *Proxy) {
	if x.HTTPProxy != "" && !v.url(p+".http_proxy", x.HTTPProxy, "http", "https", "socks5") {
		x.HTTPProxy = ""
	}
	if x.HTTPSProxy != "" && !v.url(p+".https_proxy", x.HTTPSProxy, "http", "https", "socks5") {
		x.HTTPSProxy = ""
	}
}

func (v *validator) k3s(p string, k *K3s, k3osServerURL string) {
	switch k.Role {
	case "", "server", "agent":
	default:
		v.fail(p+".role", "%s.role: %q is not server or agent", p, k.Role)
		k.Role = ""
	}
	if k.ServerURL != "" && !v.url(p+".server_url", k.ServerURL, "https", "http") {
		k.ServerURL = ""
	}
	if k.Role == "agent" && k.ServerURL == "" && k3osServerURL == "" {
		v.fail(p+".role", "%s.role: an agent needs server_url (the server to join)", p)
	}
	if k.Role == "agent" && k.ClusterInit {
		v.fail(p+".cluster_init", "%s.cluster_init: only a server can start a cluster", p)
		k.ClusterInit = false
	}
	if k.TokenFile != "" && !v.absPath(p+".token_file", k.TokenFile) {
		k.TokenFile = ""
	}
	if k.Version != "" && !k3sVersion.MatchString(k.Version) {
		v.fail(p+".version", "%s.version: %q is not a k3s version like v1.31.4+k3s1", p, k.Version)
		k.Version = ""
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ssh checks keso.ssh; rejected values are cleared (their defaults apply).
func (v *validator) ssh(b string, s *SSH) {
	if s.Port < 0 || s.Port > 65535 {
		v.fail(b+".port", "%s.port: %d is not a TCP port (1–65535)", b, s.Port)
		s.Port = 0
	}
	if s.MaxAuthTries < 0 || s.MaxAuthTries > 100 {
		v.fail(b+".max_auth_tries", "%s.max_auth_tries: %d is not a number of attempts from 1 to 100 (default 6)", b, s.MaxAuthTries)
		s.MaxAuthTries = 0
	}
	if s.MaxStartups < 0 || s.MaxStartups > 10000 {
		v.fail(b+".max_startups", "%s.max_startups: %d is not a number of connections from 1 to 10000 (default 10)", b, s.MaxStartups)
		s.MaxStartups = 0
	}
	if t := s.LoginGraceTime; t != "" {
		if d, err := time.ParseDuration(t); err != nil || d <= 0 {
			v.fail(b+".login_grace_time", "%s.login_grace_time: %q is not a positive duration like 2m (keso always bounds the log-in: there is no 0 for \"forever\")", b, t)
			s.LoginGraceTime = ""
		}
	}
	if t := s.IdleTimeout; t != "" {
		if d, err := time.ParseDuration(t); err != nil || d < 0 {
			v.fail(b+".idle_timeout", "%s.idle_timeout: %q is not a duration like 15m (0 or unset: never)", b, t)
			s.IdleTimeout = ""
		}
	}
	switch s.AllowTCPForwarding {
	case "", "local", "remote", "all", "yes", "no":
	default:
		v.fail(b+".allow_tcp_forwarding", "%s.allow_tcp_forwarding: %q: want local (ssh -L, the default), remote (ssh -R), all (or yes: both) or no", b, s.AllowTCPForwarding)
		s.AllowTCPForwarding = ""
	}
}
