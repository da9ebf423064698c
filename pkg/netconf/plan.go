// Package netconf is the boot agent's network phase: it turns the
// `keso.network` block (and `dns_nameservers`) of the cloud-config into an
// ordered list of actions on the links it observes (NewPlan, pure), and
// applies them through rtnetlink and a DHCPv4 client (Apply, thin). Run does
// both for the system stage:
//
//	nl := host.NewNetlink()
//	res := netconf.Run(ctx, cfg, nl, nl, host.FS{Root: "/"}, rec)
//
// What NewPlan decides:
//   - Interfaces match by kernel name, by name prefix ("en*"), or by MAC.
//     Exact names and MACs claim links first; a prefix then takes every
//     physical link (kind "device" or "veth") nobody claimed. A name or MAC
//     that matches no link is a problem with the config path; so is a bond
//     member with addressing of its own, a VLAN on a missing parent or on a
//     bond member, a default VLAN name over 15 characters, a name clash, an
//     off-link gateway. The entry with a problem is left out, the rest is
//     planned.
//   - With no `network` block at all, Apply brings every physical link up
//     and runs DHCP on the first one (kernel order) that has a carrier
//     (k3OS behaviour). A `network` block without DHCP anywhere gets none.
//   - Order: loopback up; physical links (IPv6 RA sysctl, MTU, up); bonds
//     (create, members down then enslaved, MTU, up); VLANs (create on their
//     parent, which is brought up, MTU, up); then every static address, then
//     every route (gateway first, metric 0 for the first gateway, 1 for the
//     next…), then DHCP, then /etc/resolv.conf. Bonds and VLANs that exist
//     already are not created again (nor their mode changed); members
//     already enslaved are left alone, so applying twice is harmless.
//   - `ipv6_ra: true` sets accept_ra=2 and autoconf=1 (SLAAC by the kernel,
//     even with forwarding on); on a configured link without it both are 0.
//     Unconfigured links keep the kernel's defaults.
//   - DHCP default routes get metric 1024+n (n counts DHCP links in plan
//     order), so two DHCP links both keep a default route and the first wins.
//     The hostname is sent as option 12.
//   - resolv.conf lists `dns_nameservers`, then each link's `dns`, then what
//     DHCP offered, without duplicates; search domains come from DHCP. It is
//     not written when no name server is known at all.
//
// What Run and Apply do at run time: when the config names links that do
// not exist yet (a USB NIC still probing), Run re-observes for up to
// LinkSettle (10s). Apply logs one Change per action and one Failure per
// action that failed (named by its config path); an action on a link whose
// creation failed is skipped. DHCP runs concurrently on every DHCP link,
// its first exchange bounded by wait_online (default 60s). Apply returns
// when every link that is not optional has a carrier (and a lease, with
// DHCP) or when wait_online ends, whichever comes first; a link still
// offline then is a failure, and the other links stay configured. DHCP on
// optional links goes on in the background until the same deadline
// (Result.Background closes then). A link that got no lease is retried in
// the background (5s, doubling up to a minute), and every lease is renewed
// at half its time, then at half the time left, and asked for afresh once
// it has expired — the address is kept meanwhile, so a store whose DHCP
// server is down keeps running. Late leases and renewals that change the
// address or the name servers rewrite resolv.conf. All of that stops when
// the ctx given to Run ends.
package netconf

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
)

// Link is an observed network interface (see host.NetLink).
type Link = host.NetLink

// DefaultWaitOnline is how long Apply waits for links without wait_online.
const DefaultWaitOnline = 60 * time.Second

// ResolvConf is where name servers are written.
const ResolvConf = "/etc/resolv.conf"

// Op is the kind of one planned action.
type Op string

// The actions Plan emits, in the order they usually appear.
const (
	OpUp         Op = "up"          // set Link up
	OpDown       Op = "down"        // set Link down (bond members before enslaving)
	OpIPv6RA     Op = "ipv6-ra"     // accept_ra/autoconf = On
	OpMTU        Op = "mtu"         // set MTU
	OpCreateBond Op = "create-bond" // create bond Link (Mode, MIIMon)
	OpEnslave    Op = "enslave"     // make Link a member of Master
	OpCreateVLAN Op = "create-vlan" // create VLAN Link on Parent with VLANID
	OpAddr       Op = "addr"        // add Addr (CIDR) to Link
	OpRoute      Op = "route"       // add Route through Link
	OpDHCP       Op = "dhcp"        // DHCPv4 on Link, default route metric Metric
	OpAutoDHCP   Op = "auto-dhcp"   // up all Candidates, DHCP on the first with a carrier
	OpResolv     Op = "resolv"      // write /etc/resolv.conf
)

// Route is a static route.
type Route struct {
	To     string // CIDR or "default"
	Via    string // next hop, or "" for an on-link route
	Metric int
}

func (r Route) String() string {
	s := r.To
	if r.Via != "" {
		s += " via " + r.Via
	}
	return fmt.Sprintf("%s metric %d", s, r.Metric)
}

// Action is one step of a Plan. Which fields matter depends on Op.
type Action struct {
	Op   Op
	Link string
	// Path is the config path that asked for the action
	// ("keso.network.interfaces[1].mtu"); failures are reported with it.
	Path string

	MTU        int
	On         bool // OpIPv6RA
	Mode       string
	MIIMon     int
	Master     string
	Parent     string
	VLANID     int
	Addr       string
	Route      Route
	Metric     int      // OpDHCP, OpAutoDHCP: metric of the default route
	Candidates []string // OpAutoDHCP
	Optional   bool     // OpDHCP: not waited for
}

// String renders the action as one line, as tests and logs show it.
func (a Action) String() string {
	switch a.Op {
	case OpUp, OpDown:
		return fmt.Sprintf("%s %s", a.Op, a.Link)
	case OpIPv6RA:
		return fmt.Sprintf("ipv6-ra %s %v", a.Link, onOff(a.On))
	case OpMTU:
		return fmt.Sprintf("mtu %s %d", a.Link, a.MTU)
	case OpCreateBond:
		return fmt.Sprintf("create-bond %s mode=%s miimon=%d", a.Link, a.Mode, a.MIIMon)
	case OpEnslave:
		return fmt.Sprintf("enslave %s to %s", a.Link, a.Master)
	case OpCreateVLAN:
		return fmt.Sprintf("create-vlan %s on %s id=%d", a.Link, a.Parent, a.VLANID)
	case OpAddr:
		return fmt.Sprintf("addr %s %s", a.Link, a.Addr)
	case OpRoute:
		return fmt.Sprintf("route %s %s", a.Link, a.Route)
	case OpDHCP:
		s := fmt.Sprintf("dhcp %s metric %d", a.Link, a.Metric)
		if a.Optional {
			s += " optional"
		}
		return s
	case OpAutoDHCP:
		return fmt.Sprintf("auto-dhcp first carrier of [%s] metric %d", strings.Join(a.Candidates, " "), a.Metric)
	case OpResolv:
		return "resolv " + ResolvConf
	}
	return fmt.Sprintf("%s %s", a.Op, a.Link)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// WaitLink is a link Apply waits for.
type WaitLink struct {
	Link string
	Path string
}

// Plan is what the network phase will do.
type Plan struct {
	Actions []Action
	// Wait are the links that must be online (carrier; and a lease when they
	// run DHCP) before boot goes on. The auto-DHCP link is waited for too.
	Wait []WaitLink
	// WaitOnline bounds the wait and every DHCP exchange.
	WaitOnline time.Duration
	// Nameservers are the static name servers, in order, deduplicated:
	// dns_nameservers, then each link's dns. DHCP adds more at apply time.
	Nameservers []string
	// NameserversPath is the config path reported when resolv.conf fails.
	NameserversPath string
	// Hostname is sent to DHCP servers (option 12).
	Hostname string
}

// Problem is a config entry that cannot be applied to the observed links.
type Problem struct {
	Path string
	Err  error
	// Missing: the entry names a link that does not exist (yet: a USB NIC
	// may still be probing). Run waits a little for such links.
	Missing bool
}

func (p Problem) Error() string { return p.Path + ": " + p.Err.Error() }

// planner accumulates the plan.
type planner struct {
	observed []Link
	byName   map[string]Link
	probs    []Problem

	links   []Action // link-level actions: create, enslave, mtu, up
	addrs   []Action
	routes  []Action
	dhcp    []Action
	waits   []WaitLink
	dns     []string
	gateway int // metric of the next gateway default route
}

func (p *planner) problem(path, format string, args ...any) {
	p.probs = append(p.probs, Problem{Path: path, Err: fmt.Errorf(format, args...)})
}

func (p *planner) missing(path, format string, args ...any) {
	p.probs = append(p.probs, Problem{Path: path, Err: fmt.Errorf(format, args...), Missing: true})
}

// physical reports whether l is a link a prefix or the no-config default
// may pick: a NIC (kind "device") or a veth end, never lo, a bond, a VLAN,
// a dummy or a tunnel the kernel made on its own (sit0, tunl0, …).
func physical(l Link) bool {
	return !l.Loopback && (l.Kind == "device" || l.Kind == "veth")
}

// NewPlan computes the network phase's actions for cfg on the observed links.
// It is pure. Problems name the config path that cannot be applied; the
// entries with problems are left out of the plan, the rest is planned.
func NewPlan(cfg cloudconfig.Config, observed []Link) (Plan, []Problem) {
	p := &planner{observed: observed, byName: map[string]Link{}}
	for _, l := range observed {
		p.byName[l.Name] = l
	}
	out := Plan{WaitOnline: DefaultWaitOnline, NameserversPath: "keso.dns_nameservers", Hostname: cfg.Hostname}
	p.dns = append(p.dns, cfg.Keso.DNSNameservers...)
	lo := []Action{{Op: OpUp, Link: "lo", Path: "keso.network"}}
	if _, ok := p.byName["lo"]; !ok {
		lo = nil
	}

	n := cfg.Keso.Network
	if n == nil {
		var cands []string
		for _, l := range observed {
			if physical(l) {
				cands = append(cands, l.Name)
			}
		}
		if len(cands) == 0 {
			p.missing("keso.network", "no network interface to run DHCP on (links seen: %s)", p.seen())
		} else {
			p.dhcp = append(p.dhcp, Action{Op: OpAutoDHCP, Path: "keso.network", Candidates: cands, Metric: 1024})
			p.waits = append(p.waits, WaitLink{Path: "keso.network"})
		}
	} else {
		if n.WaitOnline != "" {
			if d, err := time.ParseDuration(n.WaitOnline); err == nil && d >= 0 {
				out.WaitOnline = d
			} else {
				p.problem("keso.network.wait_online", "%q is not a duration like 60s", n.WaitOnline)
			}
		}
		p.network(n)
	}

	out.Actions = append(out.Actions, lo...)
	out.Actions = append(out.Actions, p.links...)
	out.Actions = append(out.Actions, p.addrs...)
	out.Actions = append(out.Actions, p.routes...)
	out.Actions = append(out.Actions, p.dhcp...)
	out.Actions = append(out.Actions, Action{Op: OpResolv, Path: "keso.dns_nameservers"})
	out.Wait = p.waits
	out.Nameservers = dedup(p.dns)
	return out, p.probs
}

func (p *planner) seen() string {
	var s []string
	for _, l := range p.observed {
		if l.Loopback {
			continue
		}
		if l.MAC != "" {
			s = append(s, l.Name+" "+l.MAC)
		} else {
			s = append(s, l.Name)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// ifaceMatch is one physical link chosen by an interfaces[] entry.
type ifaceMatch struct {
	link  string
	path  string
	entry *cloudconfig.Interface
}

func (p *planner) network(n *cloudconfig.Network) {
	const base = "keso.network"
	claimed := map[string]string{} // link -> path of the entry that claimed it
	matched := map[int][]string{}  // interfaces index -> links

	// Pass 1: exact names and MACs. Pass 2: prefixes take the rest.
	for pass := 1; pass <= 2; pass++ {
		for i := range n.Interfaces {
			e := &n.Interfaces[i]
			ip := fmt.Sprintf("%s.interfaces[%d]", base, i)
			glob := strings.HasSuffix(e.Name, "*")
			if (pass == 2) != (glob && e.MAC == "") {
				continue
			}
			var hits []string
			switch {
			case e.MAC != "":
				mac := strings.ToLower(e.MAC)
				for _, l := range p.observed {
					if l.MAC == mac && !l.Loopback && nameMatches(e.Name, l.Name) && (l.Kind != "bond" && l.Kind != "vlan") {
						hits = append(hits, l.Name)
						break
					}
				}
				if len(hits) == 0 {
					what := "MAC " + e.MAC
					if e.Name != "" {
						what += " and name " + e.Name
					}
					p.missing(ip+".mac", "no network interface has %s (links seen: %s)", what, p.seen())
					continue
				}
			case glob:
				for _, l := range p.observed {
					if physical(l) && nameMatches(e.Name, l.Name) && claimed[l.Name] == "" {
						hits = append(hits, l.Name)
					}
				}
				if len(hits) == 0 {
					p.missing(ip+".name", "no unconfigured network interface matches %q (links seen: %s)", e.Name, p.seen())
					continue
				}
			default:
				if _, ok := p.byName[e.Name]; !ok {
					p.missing(ip+".name", "no network interface is named %q (links seen: %s)", e.Name, p.seen())
					continue
				}
				hits = []string{e.Name}
			}
			for _, h := range hits {
				if prev := claimed[h]; prev != "" {
					p.problem(ip, "%s is already configured by %s", h, prev)
					continue
				}
				claimed[h] = ip
				matched[i] = append(matched[i], h)
			}
		}
	}

	// Bond membership, checked before physical links are planned.
	members := map[string]string{} // member link -> bond name
	bondOK := make([]bool, len(n.Bonds))
	names := map[string]string{} // new link name -> path
	for i := range n.Bonds {
		b := &n.Bonds[i]
		bp := fmt.Sprintf("%s.bonds[%d]", base, i)
		ok := true
		if l, exists := p.byName[b.Name]; exists && l.Kind != "bond" {
			p.problem(bp+".name", "%s already exists as a %s link", b.Name, l.Kind)
			ok = false
		}
		if prev, dup := names[b.Name]; dup {
			p.problem(bp+".name", "%s is already defined by %s", b.Name, prev)
			ok = false
		}
		for j, m := range b.Interfaces {
			mp := fmt.Sprintf("%s.interfaces[%d]", bp, j)
			l, exists := p.byName[m]
			switch {
			case !exists:
				p.missing(mp, "no network interface is named %q (links seen: %s)", m, p.seen())
				ok = false
			case l.Kind == "bond" || l.Kind == "vlan" || l.Loopback:
				p.problem(mp, "%s is a %s link and cannot be a bond member", m, l.Kind)
				ok = false
			case members[m] != "" && members[m] != b.Name:
				p.problem(mp, "%s is already a member of bond %s", m, members[m])
				ok = false
			}
			if path := claimed[m]; path != "" {
				e := entryFor(n, path)
				if e != nil && hasAddressing(e.Addressing) {
					p.problem(path, "%s is a member of bond %s: put dhcp, addresses, routes and dns on the bond", m, b.Name)
					ok = false
				}
			}
		}
		if ok {
			for _, m := range b.Interfaces {
				members[m] = b.Name
			}
			names[b.Name] = bp
		}
		bondOK[i] = ok
	}

	// Physical links.
	var ifaces []ifaceMatch
	for i := range n.Interfaces {
		for _, l := range matched[i] {
			ifaces = append(ifaces, ifaceMatch{link: l, path: fmt.Sprintf("%s.interfaces[%d]", base, i), entry: &n.Interfaces[i]})
		}
	}
	memberMTU := map[string]ifaceMatch{}
	for _, m := range ifaces {
		if members[m.link] != "" {
			memberMTU[m.link] = m
			continue
		}
		p.link(m.link, m.path, m.entry.Addressing)
	}

	// Bonds.
	for i := range n.Bonds {
		if !bondOK[i] {
			continue
		}
		b := &n.Bonds[i]
		bp := fmt.Sprintf("%s.bonds[%d]", base, i)
		mode := b.Mode
		if mode == "" {
			mode = "active-backup"
		}
		miimon := b.MIIMon
		if miimon == 0 {
			miimon = 100
		}
		if l, exists := p.byName[b.Name]; !exists || l.Kind != "bond" {
			p.links = append(p.links, Action{Op: OpCreateBond, Link: b.Name, Path: bp, Mode: mode, MIIMon: miimon})
		}
		for j, m := range b.Interfaces {
			mp := fmt.Sprintf("%s.interfaces[%d]", bp, j)
			if mm, ok := memberMTU[m]; ok && mm.entry.MTU != 0 {
				p.links = append(p.links, Action{Op: OpMTU, Link: m, Path: mm.path + ".mtu", MTU: mm.entry.MTU})
			}
			if p.byName[m].Master == b.Name {
				continue // already enslaved
			}
			p.links = append(p.links,
				Action{Op: OpDown, Link: m, Path: mp, Master: b.Name},
				Action{Op: OpEnslave, Link: m, Path: mp, Master: b.Name})
		}
		p.link(b.Name, bp, b.Addressing)
	}

	// VLANs.
	for i := range n.VLANs {
		v := &n.VLANs[i]
		vp := fmt.Sprintf("%s.vlans[%d]", base, i)
		name := v.Name
		if name == "" {
			name = fmt.Sprintf("%s.%d", v.Link, v.ID)
			if len(name) > 15 {
				p.problem(vp+".name", "the default name %q is longer than 15 characters: give the VLAN a name", name)
				continue
			}
		}
		parent, exists := p.byName[v.Link]
		_, isBond := names[v.Link]
		if !exists && !isBond {
			p.missing(vp+".link", "no network interface or bond is named %q (links seen: %s)", v.Link, p.seen())
			continue
		}
		if exists && !isBond && members[v.Link] != "" {
			p.problem(vp+".link", "%s is a member of bond %s: put the VLAN on the bond", v.Link, members[v.Link])
			continue
		}
		if l, ok := p.byName[name]; ok && l.Kind != "vlan" {
			p.problem(vp+".name", "%s already exists as a %s link", name, l.Kind)
			continue
		}
		if prev, dup := names[name]; dup {
			p.problem(vp+".name", "%s is already defined by %s", name, prev)
			continue
		}
		names[name] = vp
		// The parent must be up for the VLAN to carry traffic.
		if exists && !isBond && claimed[v.Link] == "" && !parent.Up && !hasAction(p.links, OpUp, v.Link) {
			p.links = append(p.links, Action{Op: OpUp, Link: v.Link, Path: vp + ".link"})
		}
		if _, ok := p.byName[name]; !ok {
			p.links = append(p.links, Action{Op: OpCreateVLAN, Link: name, Path: vp, Parent: v.Link, VLANID: v.ID})
		}
		p.link(name, vp, v.Addressing)
	}
}

// link plans one link's settings: RA, MTU, up, addresses, routes, DNS,
// DHCP, and whether boot waits for it.
func (p *planner) link(name, path string, a cloudconfig.Addressing) {
	// A configured link has exactly what it was given: SLAAC only with
	// ipv6_ra (new bonds and VLANs would otherwise get the kernel default).
	p.links = append(p.links, Action{Op: OpIPv6RA, Link: name, Path: path + ".ipv6_ra", On: a.IPv6RA})
	if a.MTU != 0 {
		p.links = append(p.links, Action{Op: OpMTU, Link: name, Path: path + ".mtu", MTU: a.MTU})
	}
	p.links = append(p.links, Action{Op: OpUp, Link: name, Path: path})
	for i, addr := range a.Addresses {
		p.addrs = append(p.addrs, Action{Op: OpAddr, Link: name, Path: fmt.Sprintf("%s.addresses[%d]", path, i), Addr: addr})
	}
	if a.Gateway != "" {
		if !onLink(a.Addresses, a.Gateway) && !a.DHCP {
			p.problem(path+".gateway", "gateway %s is not inside any of the link's addresses (%s)", a.Gateway, strings.Join(a.Addresses, ", "))
		} else {
			p.routes = append(p.routes, Action{Op: OpRoute, Link: name, Path: path + ".gateway", Route: Route{To: "default", Via: a.Gateway, Metric: p.gateway}})
			p.gateway++
		}
	}
	for i, r := range a.Routes {
		p.routes = append(p.routes, Action{Op: OpRoute, Link: name, Path: fmt.Sprintf("%s.routes[%d]", path, i), Route: Route{To: r.To, Via: r.Via, Metric: r.Metric}})
	}
	p.dns = append(p.dns, a.DNS...)
	if a.DHCP {
		p.dhcp = append(p.dhcp, Action{Op: OpDHCP, Link: name, Path: path + ".dhcp", Metric: 1024 + len(p.dhcp), Optional: a.Optional})
	}
	if !a.Optional {
		p.waits = append(p.waits, WaitLink{Link: name, Path: path})
	}
}

func nameMatches(pattern, name string) bool {
	if pattern == "" {
		return true
	}
	if strings.HasSuffix(pattern, "*") {
		return strings.HasPrefix(name, strings.TrimSuffix(pattern, "*"))
	}
	return pattern == name
}

func hasAddressing(a cloudconfig.Addressing) bool {
	return a.DHCP || a.IPv6RA || len(a.Addresses) > 0 || a.Gateway != "" || len(a.Routes) > 0 || len(a.DNS) > 0
}

func hasAction(as []Action, op Op, link string) bool {
	for _, a := range as {
		if a.Op == op && a.Link == link {
			return true
		}
	}
	return false
}

// entryFor returns the interfaces[] entry with config path path.
func entryFor(n *cloudconfig.Network, path string) *cloudconfig.Interface {
	for i := range n.Interfaces {
		if fmt.Sprintf("keso.network.interfaces[%d]", i) == path {
			return &n.Interfaces[i]
		}
	}
	return nil
}

// onLink reports whether gw is inside one of the CIDRs.
func onLink(cidrs []string, gw string) bool {
	ip := net.ParseIP(gw)
	if ip == nil {
		return false
	}
	if ip.IsLinkLocalUnicast() {
		return true // fe80::1 is reachable on any IPv6 link
	}
	for _, c := range cidrs {
		if _, n, err := net.ParseCIDR(c); err == nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

func dedup(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		key := s
		if ip := net.ParseIP(s); ip != nil {
			key = ip.String()
		}
		if s == "" || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, s)
	}
	return out
}
