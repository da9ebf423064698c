package netconf

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
)

// Netlinker is what Apply needs from the kernel's link layer
// (host.Netlink in production).
type Netlinker interface {
	Links() ([]Link, error)
	SetUp(link string) error
	SetDown(link string) error
	SetMTU(link string, mtu int) error
	CreateBond(name, mode string, miimon int) error
	CreateVLAN(name, parent string, id int) error
	SetMaster(link, master string) error
	ReplaceAddr(link, cidr string) error
	ReplaceRoute(link, to, via string, metric int) error
	SetIPv6RA(link string, on bool) error
}

// Lease is a DHCPv4 lease, already applied to its link.
type Lease = host.DHCPv4Lease

// DHCPOptions say what a DHCPv4 exchange sends (hostname) and the metric
// of the lease's routes.
type DHCPOptions = host.DHCPOptions

// DHCPer gets a DHCPv4 lease on an up link and applies it (address,
// routes), and renews it. Both must return when ctx ends (host.Netlink).
type DHCPer interface {
	DHCPv4(ctx context.Context, link string, opts DHCPOptions) (Lease, error)
	RenewDHCPv4(ctx context.Context, lease Lease, opts DHCPOptions) (Lease, error)
}

// FS is where resolv.conf is written (host.FS).
type FS interface {
	WriteFileAtomic(p string, data []byte, mode fs.FileMode) error
}

// Result is what Apply leaves behind.
type Result struct {
	// Leases got before Apply returned, in plan order.
	Leases []Lease
	// Offline are the waited-for links that were not online in time.
	Offline []string
	// Background is closed when DHCP on optional links is over (at the
	// latest at the wait_online deadline). Apply's Recorder keeps receiving
	// their changes until then.
	Background <-chan struct{}
	// Stopped is closed when every DHCP goroutine Apply started (the
	// renewals and retries that outlive it) has returned, which happens
	// once ctx ends: after it nothing writes resolv.conf any more.
	Stopped <-chan struct{}
}

// NTPServers returns the NTP servers the leases offered (option 42), in
// order, without duplicates: a fallback when ntp_servers is empty.
func (r Result) NTPServers() []string {
	var all []string
	for _, l := range r.Leases {
		all = append(all, l.NTP...)
	}
	return dedup(all)
}

// LinkSettle is how long Run waits for links the config names that do not
// exist yet (USB NICs enumerate after the driver loads), at most
// wait_online.
var LinkSettle = 10 * time.Second

// Run observes the links, plans, reports every plan problem as a failure
// with its config path, and applies the plan. When the config names links
// that do not exist yet, it re-observes for up to LinkSettle first. It is
// what the system stage calls; nl and dh are usually one *host.Netlink.
// ctx should live as long as the boot agent: DHCP leases are renewed in
// the background until it ends.
func Run(ctx context.Context, cfg cloudconfig.Config, nl Netlinker, dh DHCPer, fsys FS, rec *phase.Recorder) Result {
	var (
		plan   Plan
		probs  []Problem
		start  = time.Now()
		waited bool
	)
	for {
		links, err := nl.Links()
		if err != nil {
			rec.Fail("keso.network", err)
			done := make(chan struct{})
			close(done)
			return Result{Background: done, Stopped: done}
		}
		plan, probs = NewPlan(cfg, links)
		if !anyMissing(probs) || time.Since(start) >= min(LinkSettle, plan.WaitOnline) || ctx.Err() != nil {
			break
		}
		waited = true
		select {
		case <-ctx.Done():
		case <-time.After(2 * pollInterval):
		}
	}
	if waited {
		rec.Change("waited", "links", fmt.Sprintf("%s for links the config names to appear", time.Since(start).Round(time.Millisecond)))
	}
	for _, p := range probs {
		rec.Fail(p.Path, p.Err)
	}
	return Apply(ctx, plan, nl, dh, fsys, rec)
}

func anyMissing(ps []Problem) bool {
	for _, p := range ps {
		if p.Missing {
			return true
		}
	}
	return false
}

// pollInterval is how often carriers are checked while waiting.
const pollInterval = 100 * time.Millisecond

// Apply executes the plan. It never stops at a failure: each one is
// recorded with its config path and the other actions still run. It
// returns within plan.WaitOnline (plus a little) however the network
// behaves.
//
// Leases are renewed in the background until ctx ends: give Apply the
// boot agent's lifetime context, not a per-phase one.
func Apply(ctx context.Context, plan Plan, nl Netlinker, dh DHCPer, fsys FS, rec *phase.Recorder) Result {
	life := ctx
	ctx, cancel := context.WithTimeout(ctx, plan.WaitOnline)
	failed := map[string]bool{} // links that could not be created
	for _, a := range plan.Actions {
		switch a.Op {
		case OpDHCP, OpAutoDHCP, OpResolv:
			continue
		}
		if failed[a.Link] {
			continue
		}
		if failed[a.Parent] || failed[a.Master] {
			if a.Op == OpCreateVLAN {
				failed[a.Link] = true
				rec.Fail(a.Path, fmt.Errorf("create vlan %s: its parent %s could not be set up", a.Link, a.Parent))
			}
			continue
		}
		if err := do(nl, a); err != nil {
			if a.Op == OpCreateBond || a.Op == OpCreateVLAN {
				failed[a.Link] = true
			}
			rec.Fail(a.Path, err)
			continue
		}
		rec.Change(string(a.Op), a.Link, detail(a))
	}

	st := &dnsState{static: plan.Nameservers, fsys: fsys, rec: rec, path: plan.NameserversPath}
	var mandatory, optional, all sync.WaitGroup
	online := map[string]bool{} // links whose DHCP succeeded
	var mu sync.Mutex
	for i, a := range plan.Actions {
		if a.Op != OpDHCP && a.Op != OpAutoDHCP {
			continue
		}
		if failed[a.Link] {
			continue
		}
		wg := &mandatory
		if a.Optional {
			wg = &optional
		}
		wg.Add(1)
		all.Add(1)
		go func(i int, a Action) {
			defer all.Done()
			opts := DHCPOptions{Metric: a.Metric, Hostname: plan.Hostname}
			got := func(l Lease) {
				mu.Lock()
				online[l.Link] = true
				mu.Unlock()
				st.add(i, l)
			}
			lease, err := acquire(ctx, nl, dh, a, opts, rec, true)
			if err != nil {
				if a.Optional {
					err = fmt.Errorf("%w (optional link: boot did not wait for it)", err)
				}
				rec.Fail(a.Path, fmt.Errorf("%w; retrying in the background", err))
				wg.Done()
				retryLease(life, nl, dh, a, opts, rec, func(l Lease) {
					got(l)
					st.write()
				})
				return
			}
			rec.Change("dhcp", lease.Link, leaseDetail(lease))
			got(lease)
			if a.Optional {
				st.write() // boot may have gone on already
			}
			wg.Done()
			keepLease(life, dh, a.Path, lease, opts, rec, func(l Lease) {
				st.add(i, l)
				st.write()
			})
		}(i, a)
	}
	mandatory.Wait()
	st.write()

	var waits []WaitLink
	for _, w := range plan.Wait {
		if w.Link == "" { // the auto-DHCP link: online when its DHCP succeeded
			if len(st.snapshot()) == 0 {
				waits = append(waits, w)
			}
			continue
		}
		mu.Lock()
		done := online[w.Link]
		mu.Unlock()
		if !done && !failed[w.Link] {
			waits = append(waits, w)
		}
	}
	res := Result{Leases: st.snapshot()}
	res.Offline = waitCarrier(ctx, nl, waits, plan.WaitOnline, rec)

	bg := make(chan struct{})
	go func() {
		optional.Wait()
		cancel()
		close(bg)
	}()
	res.Background = bg
	stopped := make(chan struct{})
	go func() {
		all.Wait()
		close(stopped)
	}()
	res.Stopped = stopped
	return res
}

// do performs one link-level action.
func do(nl Netlinker, a Action) error {
	switch a.Op {
	case OpUp:
		return nl.SetUp(a.Link)
	case OpDown:
		return nl.SetDown(a.Link)
	case OpMTU:
		return nl.SetMTU(a.Link, a.MTU)
	case OpIPv6RA:
		return nl.SetIPv6RA(a.Link, a.On)
	case OpCreateBond:
		return nl.CreateBond(a.Link, a.Mode, a.MIIMon)
	case OpEnslave:
		return nl.SetMaster(a.Link, a.Master)
	case OpCreateVLAN:
		return nl.CreateVLAN(a.Link, a.Parent, a.VLANID)
	case OpAddr:
		return nl.ReplaceAddr(a.Link, a.Addr)
	case OpRoute:
		return nl.ReplaceRoute(a.Link, a.Route.To, a.Route.Via, a.Route.Metric)
	}
	return fmt.Errorf("%s: unknown network action %q", a.Link, a.Op)
}

func detail(a Action) string {
	switch a.Op {
	case OpIPv6RA:
		return onOff(a.On)
	case OpMTU:
		return fmt.Sprint(a.MTU)
	case OpCreateBond:
		return fmt.Sprintf("mode %s, miimon %d", a.Mode, a.MIIMon)
	case OpEnslave:
		return "to " + a.Master
	case OpCreateVLAN:
		return fmt.Sprintf("id %d on %s", a.VLANID, a.Parent)
	case OpAddr:
		return a.Addr
	case OpRoute:
		return a.Route.String()
	}
	return ""
}

func leaseDetail(l Lease) string {
	s := l.Address
	if l.Router != "" {
		s += ", router " + l.Router
	}
	if len(l.DNS) > 0 {
		s += ", dns " + strings.Join(l.DNS, " ")
	}
	if l.Server != "" {
		s += ", from " + l.Server
	}
	return s
}

// dhcpBounded runs dh.DHCPv4 but gives up when ctx ends even if the
// implementation does not (a DHCP server that never answers must not hang
// boot).
func dhcpBounded(ctx context.Context, dh DHCPer, link string, opts DHCPOptions) (Lease, error) {
	type res struct {
		l   Lease
		err error
	}
	ch := make(chan res, 1)
	go func() {
		l, err := dh.DHCPv4(ctx, link, opts)
		ch <- res{l, err}
	}()
	select {
	case r := <-ch:
		return r.l, r.err
	case <-ctx.Done():
		// Give a well-behaved client a moment to return its own error.
		select {
		case r := <-ch:
			return r.l, r.err
		case <-time.After(time.Second):
			return Lease{}, fmt.Errorf("dhcp on %s: no lease: %w", link, ctx.Err())
		}
	}
}

// RetryBackoff is the first pause before DHCP is tried again on a link
// that got no lease in time; it doubles up to a minute.
var RetryBackoff = 5 * time.Second

// acquire gets a first lease for a DHCP or auto-DHCP action.
func acquire(ctx context.Context, nl Netlinker, dh DHCPer, a Action, opts DHCPOptions, rec *phase.Recorder, first bool) (Lease, error) {
	link := a.Link
	if a.Op == OpAutoDHCP {
		var err error
		if link, err = firstCarrier(ctx, nl, a.Candidates, rec, first); err != nil {
			return Lease{}, err
		}
		rec.Change("auto-dhcp", link, "first link with a carrier")
	}
	return dhcpBounded(ctx, dh, link, opts)
}

// retryLease tries again, with a growing pause, until a lease comes or ctx
// ends: a store whose DHCP server was down at boot recovers by itself.
// The lease is then kept like any other.
func retryLease(ctx context.Context, nl Netlinker, dh DHCPer, a Action, opts DHCPOptions, rec *phase.Recorder, got func(Lease)) {
	pause := RetryBackoff
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		l, err := acquire(actx, nl, dh, a, opts, rec, false)
		cancel()
		if err == nil {
			rec.Change("dhcp", l.Link, leaseDetail(l)+", after retrying")
			got(l)
			keepLease(ctx, dh, a.Path, l, opts, rec, got)
			return
		}
		pause = min(2*pause, time.Minute)
	}
}

// keepLease renews the lease at half its time, then retries at half the
// time left, and once it has expired asks for a new lease from scratch;
// the address is kept meanwhile (a store whose DHCP server is down keeps
// working). got is called with each renewed lease. It returns when ctx
// ends or the lease is infinite.
func keepLease(ctx context.Context, dh DHCPer, path string, lease Lease, opts DHCPOptions, rec *phase.Recorder, got func(Lease)) {
	clamp := func(d, lo, hi time.Duration) time.Duration { return min(max(d, lo), hi) }
	for lease.LeaseTime > 0 {
		expiry := lease.Obtained.Add(lease.LeaseTime)
		next := lease.Obtained.Add(lease.LeaseTime / 2)
		reported := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(next)):
			}
			actx, cancel := context.WithTimeout(ctx, clamp(lease.LeaseTime/4, time.Second, 30*time.Second))
			nl, err := dh.RenewDHCPv4(actx, lease, opts)
			if err != nil && time.Now().After(expiry) {
				nl, err = dh.DHCPv4(actx, lease.Link, opts)
			}
			cancel()
			if err == nil {
				if nl.Address != lease.Address {
					rec.Change("dhcp", nl.Link, "new lease "+leaseDetail(nl))
				}
				lease = nl
				got(nl)
				break
			}
			if ctx.Err() != nil {
				return
			}
			if !reported { // once per lease, not every retry
				rec.Fail(path, fmt.Errorf("%w (keeping %s, retrying)", err, lease.Address))
				reported = true
			}
			wait := clamp(time.Until(expiry)/2, time.Second, time.Minute)
			if time.Now().After(expiry) {
				wait = clamp(lease.LeaseTime/4, time.Second, time.Minute)
			}
			next = time.Now().Add(wait)
		}
	}
}

// firstCarrier brings every candidate up (when up is set) and returns the
// first (in the candidates' order) that has a carrier, waiting until ctx
// ends.
func firstCarrier(ctx context.Context, nl Netlinker, cands []string, rec *phase.Recorder, up bool) (string, error) {
	for _, c := range cands {
		if !up {
			break
		}
		if err := nl.SetUp(c); err != nil {
			rec.Fail("keso.network", err)
			continue
		}
		rec.Change("up", c, "looking for a carrier")
	}
	for {
		links, err := nl.Links()
		if err == nil {
			carrier := map[string]bool{}
			for _, l := range links {
				carrier[l.Name] = l.Carrier
			}
			for _, c := range cands {
				if carrier[c] {
					return c, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no network interface got a carrier (tried %s): %w", strings.Join(cands, ", "), ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// waitCarrier waits until every link in waits has a carrier or ctx ends,
// and returns (and reports) the ones that never got one.
func waitCarrier(ctx context.Context, nl Netlinker, waits []WaitLink, limit time.Duration, rec *phase.Recorder) []string {
	pending := map[string]WaitLink{}
	for _, w := range waits {
		if w.Link != "" {
			pending[w.Link] = w
		}
	}
	for len(pending) > 0 {
		if links, err := nl.Links(); err == nil {
			for _, l := range links {
				if _, ok := pending[l.Name]; ok && l.Carrier {
					delete(pending, l.Name)
				}
			}
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			var off []string
			for name := range pending {
				off = append(off, name)
			}
			sort.Strings(off)
			for _, name := range off {
				rec.Fail(pending[name].Path, fmt.Errorf("%s is not online after %s: no carrier (set optional: true if boot should not wait for it)", name, limit))
			}
			return off
		case <-time.After(pollInterval):
		}
	}
	// The auto-DHCP wait (Link "") has already been reported by its DHCP.
	var off []string
	for _, w := range waits {
		if w.Link == "" {
			off = append(off, "auto-dhcp")
		}
	}
	return off
}

// dnsState merges name servers and writes resolv.conf.
type dnsState struct {
	mu      sync.Mutex
	static  []string
	leases  map[int]Lease // by action index, for a stable order
	written string
	fsys    FS
	rec     *phase.Recorder
	path    string
}

func (s *dnsState) add(i int, l Lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases == nil {
		s.leases = map[int]Lease{}
	}
	s.leases[i] = l
}

func (s *dnsState) ordered() []Lease {
	idx := make([]int, 0, len(s.leases))
	for i := range s.leases {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	out := make([]Lease, 0, len(idx))
	for _, i := range idx {
		out = append(out, s.leases[i])
	}
	return out
}

func (s *dnsState) snapshot() []Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ordered()
}

// write renders resolv.conf and writes it when it changed.
func (s *dnsState) write() {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := append([]string(nil), s.static...)
	var search []string
	for _, l := range s.ordered() {
		ns = append(ns, l.DNS...)
		search = append(search, l.Search...)
	}
	content := RenderResolv(ns, search)
	if content == "" || content == s.written {
		return
	}
	if err := s.fsys.WriteFileAtomic(ResolvConf, []byte(content), 0o644); err != nil {
		s.rec.Fail(s.path, err)
		return
	}
	s.written = content
	s.rec.Change("write", ResolvConf, "nameserver "+strings.Join(dedup(ns), " "))
}

// RenderResolv renders /etc/resolv.conf for the name servers and search
// domains, deduplicated in order; "" when there is no name server.
func RenderResolv(nameservers, search []string) string {
	ns := dedup(nameservers)
	if len(ns) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("# Written by keso-init: keso.dns_nameservers, per-link dns and DHCP.\n")
	for _, n := range ns {
		if ip := net.ParseIP(n); ip != nil {
			n = ip.String()
		}
		fmt.Fprintf(&b, "nameserver %s\n", n)
	}
	if s := dedup(search); len(s) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(s, " "))
	}
	return b.String()
}
