package netconf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
)

// fakeNet is an in-memory link layer: it records every call and keeps
// just enough state for Links to answer like the kernel would.
type fakeNet struct {
	mu        sync.Mutex
	links     []Link
	calls     []string
	fail      map[string]error // "op link" -> error
	noCarrier map[string]bool  // links that never get a carrier
}

func newFakeNet(links ...Link) *fakeNet {
	return &fakeNet{links: links, fail: map[string]error{}, noCarrier: map[string]bool{}}
}

func (f *fakeNet) call(op, link, args string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, strings.TrimSpace(op+" "+link+" "+args))
	if err := f.fail[op+" "+link]; err != nil {
		return err
	}
	return nil
}

func (f *fakeNet) get(name string) *Link {
	for i := range f.links {
		if f.links[i].Name == name {
			return &f.links[i]
		}
	}
	return nil
}

func (f *fakeNet) mod(name string, fn func(l *Link)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.get(name)
	if l == nil {
		return fmt.Errorf("link %s: not found", name)
	}
	fn(l)
	return nil
}

func (f *fakeNet) Links() ([]Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Link(nil), f.links...), nil
}

func (f *fakeNet) SetUp(n string) error {
	if err := f.call("up", n, ""); err != nil {
		return err
	}
	return f.mod(n, func(l *Link) { l.Up = true; l.Carrier = !f.noCarrier[n] })
}

func (f *fakeNet) SetDown(n string) error {
	if err := f.call("down", n, ""); err != nil {
		return err
	}
	return f.mod(n, func(l *Link) { l.Up = false; l.Carrier = false })
}

func (f *fakeNet) SetMTU(n string, mtu int) error {
	if err := f.call("mtu", n, fmt.Sprint(mtu)); err != nil {
		return err
	}
	return f.mod(n, func(l *Link) { l.MTU = mtu })
}

func (f *fakeNet) CreateBond(n, mode string, miimon int) error {
	if err := f.call("create-bond", n, fmt.Sprintf("%s %d", mode, miimon)); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links = append(f.links, Link{Name: n, Index: len(f.links) + 1, Kind: "bond"})
	return nil
}

func (f *fakeNet) CreateVLAN(n, parent string, id int) error {
	if err := f.call("create-vlan", n, fmt.Sprintf("%s %d", parent, id)); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.get(parent) == nil {
		return fmt.Errorf("link %s: not found", parent)
	}
	f.links = append(f.links, Link{Name: n, Index: len(f.links) + 1, Kind: "vlan"})
	return nil
}

func (f *fakeNet) SetMaster(n, master string) error {
	if err := f.call("enslave", n, master); err != nil {
		return err
	}
	return f.mod(n, func(l *Link) { l.Master = master })
}

func (f *fakeNet) ReplaceAddr(n, cidr string) error { return f.call("addr", n, cidr) }

func (f *fakeNet) ReplaceRoute(n, to, via string, metric int) error {
	return f.call("route", n, fmt.Sprintf("%s via %s metric %d", to, via, metric))
}

func (f *fakeNet) SetIPv6RA(n string, on bool) error { return f.call("ipv6-ra", n, onOff(on)) }

func (f *fakeNet) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// fakeDHCP answers per link: a lease after a delay, an error, or never.
// Renewals answer from renew[link] in turn, or fail when it is empty.
type fakeDHCP struct {
	leases map[string]Lease
	delay  map[string]time.Duration
	deaf   map[string]bool      // ignores ctx too: only Apply's own bound saves boot
	from   map[string]time.Time // the server answers only from then on

	mu        sync.Mutex
	renew     map[string][]Lease
	calls     []string
	hostnames []string
}

func (d *fakeDHCP) log(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, s)
}

func (d *fakeDHCP) Calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

func (d *fakeDHCP) DHCPv4(ctx context.Context, link string, opts DHCPOptions) (Lease, error) {
	d.log("dhcp " + link)
	d.mu.Lock()
	d.hostnames = append(d.hostnames, opts.Hostname)
	d.mu.Unlock()
	if d.deaf[link] {
		select {} // a broken client that never returns
	}
	l, ok := d.leases[link]
	if from := d.from[link]; ok && time.Now().Before(from) {
		select { // the client retransmits; the server answers once it is back
		case <-time.After(time.Until(from)):
		case <-ctx.Done():
			return Lease{}, fmt.Errorf("dhcp on %s: no lease: %w", link, ctx.Err())
		}
	}
	if !ok {
		<-ctx.Done() // a server that never answers
		return Lease{}, fmt.Errorf("dhcp on %s: no lease: %w", link, ctx.Err())
	}
	select {
	case <-time.After(d.delay[link]):
		l.Link = link
		l.Obtained = time.Now()
		return l, nil
	case <-ctx.Done():
		return Lease{}, fmt.Errorf("dhcp on %s: no lease: %w", link, ctx.Err())
	}
}

func (d *fakeDHCP) RenewDHCPv4(ctx context.Context, old Lease, opts DHCPOptions) (Lease, error) {
	d.log("renew " + old.Link + " " + old.Address)
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.renew[old.Link]
	if len(q) == 0 {
		return old, fmt.Errorf("renew dhcp lease %s on %s: no answer", old.Address, old.Link)
	}
	l := q[0]
	d.renew[old.Link] = q[1:]
	l.Link = old.Link
	l.Obtained = time.Now()
	return l, nil
}

func upNIC(name string, index int, mac string) Link {
	l := nic(name, index, mac)
	return l
}

type applied struct {
	res     Result
	report  phase.Report
	console string
	resolv  string
	took    time.Duration
}

func apply(t *testing.T, config string, fn *fakeNet, fd *fakeDHCP) applied {
	t.Helper()
	cfg := load(t, t.Name(), config)
	root := t.TempDir()
	var console bytes.Buffer
	var cmu sync.Mutex
	rec := phase.NewRecorder("network", lockedWriter{&cmu, &console}, nil)
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background()) // ends background DHCP
	t.Cleanup(cancel)
	res := Run(ctx, cfg, fn, fd, host.FS{Root: root}, rec)
	took := time.Since(start)
	<-res.Background
	b, err := os.ReadFile(filepath.Join(root, "etc", "resolv.conf"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	cmu.Lock()
	defer cmu.Unlock()
	return applied{res: res, report: rec.Done(), console: console.String(), resolv: string(b), took: took}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func failures(r phase.Report) []string {
	var out []string
	for _, f := range r.Failures {
		out = append(out, f.Path+": "+f.Err)
	}
	return out
}

func TestApplyStaticVLAN(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "config-examples", "05-static-ip-two-nics-vlan.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fn := newFakeNet(lo(), upNIC("eth0", 2, "52:54:00:ab:cd:01"), upNIC("eth1", 3, "52:54:00:ab:cd:02"))
	a := apply(t, string(b), fn, &fakeDHCP{})
	diffLines(t, "calls", fn.Calls(), []string{
		"up lo",
		"ipv6-ra eth0 off", "up eth0",
		"ipv6-ra eth1 off", "mtu eth1 9000", "up eth1",
		"create-vlan pos eth0 30", "ipv6-ra pos off", "up pos",
		"addr eth0 192.168.10.20/24", "addr eth1 172.16.5.20/24", "addr pos 10.30.0.20/24",
		"route eth0 default via 192.168.10.1 metric 0",
		"route eth1 172.16.0.0/12 via 172.16.5.1 metric 0",
	})
	diffLines(t, "failures", failures(a.report), nil)
	if got, want := a.resolv, "# Written by keso-init: keso.dns_nameservers, per-link dns and DHCP.\nnameserver 192.168.10.1\nnameserver 1.1.1.1\n"; got != want {
		t.Errorf("resolv.conf:\ngot  %q\nwant %q", got, want)
	}
	for _, line := range []string{
		"keso: network: create-vlan pos (id 30 on eth0)\n",
		"keso: network: mtu eth1 (9000)\n",
		"keso: network: write /etc/resolv.conf (nameserver 192.168.10.1 1.1.1.1)\n",
	} {
		if !strings.Contains(a.console, line) {
			t.Errorf("console lacks %q:\n%s", line, a.console)
		}
	}
	if got, want := len(a.report.Changes), 15; got != want {
		t.Errorf("got %d changes, want %d (one per action plus resolv.conf)", got, want)
	}
}

// TestApplyDeafDHCP: a DHCP server that never answers costs at most
// wait_online, is reported with its config path, and the other link and
// the name servers are still configured.
func TestApplyDeafDHCP(t *testing.T) {
	config := `keso:
  dns_nameservers: [10.0.0.53]
  network:
    wait_online: 300ms
    interfaces:
      - name: eth0
        dhcp: true
      - name: eth1
        addresses: [10.1.0.5/24]
      - name: eth2
        dhcp: true
`
	for _, deaf := range []bool{false, true} {
		t.Run(fmt.Sprintf("client-ignores-ctx=%v", deaf), func(t *testing.T) {
			fn := newFakeNet(lo(), upNIC("eth0", 2, ""), upNIC("eth1", 3, ""), upNIC("eth2", 4, ""))
			fd := &fakeDHCP{leases: map[string]Lease{"eth2": {Address: "10.2.0.9/24", DNS: []string{"10.2.0.1"}, Search: []string{"store.example"}, NTP: []string{"10.2.0.123", "10.2.0.123"}}},
				deaf: map[string]bool{"eth0": deaf}}
			a := apply(t, config, fn, fd)
			if a.took > 5*time.Second {
				t.Errorf("Apply took %s with wait_online 300ms", a.took)
			}
			fs := failures(a.report)
			if len(fs) != 1 || !strings.HasPrefix(fs[0], "keso.network.interfaces[0].dhcp: dhcp on eth0: no lease") {
				t.Errorf("failures: got %q, want one for keso.network.interfaces[0].dhcp", fs)
			}
			if !contains(fn.Calls(), "addr eth1 10.1.0.5/24") {
				t.Errorf("eth1 was not configured: %v", fn.Calls())
			}
			if got, want := a.resolv, "# Written by keso-init: keso.dns_nameservers, per-link dns and DHCP.\nnameserver 10.0.0.53\nnameserver 10.2.0.1\nsearch store.example\n"; got != want {
				t.Errorf("resolv.conf:\ngot  %q\nwant %q", got, want)
			}
			if len(a.res.Leases) != 1 || a.res.Leases[0].Link != "eth2" {
				t.Errorf("leases: got %+v, want eth2's", a.res.Leases)
			}
			diffLines(t, "ntp servers from DHCP", a.res.NTPServers(), []string{"10.2.0.123"})
		})
	}
}

// TestApplyOptionalDHCP: boot does not wait for an optional link's lease;
// when it comes, resolv.conf is rewritten with its name servers.
func TestApplyOptionalDHCP(t *testing.T) {
	config := `keso:
  network:
    wait_online: 5s
    interfaces:
      - name: eth0
        dhcp: true
        dns: [10.0.0.1]
      - name: eth1
        dhcp: true
        optional: true
`
	fn := newFakeNet(lo(), upNIC("eth0", 2, ""), upNIC("eth1", 3, ""))
	fd := &fakeDHCP{
		leases: map[string]Lease{"eth0": {Address: "10.0.0.5/24", DNS: []string{"10.0.0.1"}}, "eth1": {Address: "10.1.0.5/24", DNS: []string{"10.1.0.1"}}},
		delay:  map[string]time.Duration{"eth1": 2 * time.Second},
	}
	cfg := load(t, t.Name(), config)
	root := t.TempDir()
	rec := phase.NewRecorder("network", nil, nil)
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := Run(ctx, cfg, fn, fd, host.FS{Root: root}, rec)
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("Apply waited %s for an optional link", took)
	}
	read := func() string {
		b, _ := os.ReadFile(filepath.Join(root, "etc", "resolv.conf"))
		return string(b)
	}
	if got := read(); strings.Contains(got, "10.1.0.1") || !strings.Contains(got, "nameserver 10.0.0.1") {
		t.Errorf("resolv.conf right after Apply: %q", got)
	}
	select {
	case <-res.Background:
	case <-time.After(5 * time.Second):
		t.Fatal("background DHCP did not finish")
	}
	if got := read(); !strings.Contains(got, "nameserver 10.0.0.1\nnameserver 10.1.0.1\n") {
		t.Errorf("resolv.conf after the optional lease: %q", got)
	}
	if r := rec.Done(); !r.OK() {
		t.Errorf("failures: %v", failures(r))
	}
}

// TestApplyAutoDHCP: with no network block, DHCP runs on the first link
// (kernel order) that gets a carrier.
func TestApplyAutoDHCP(t *testing.T) {
	fn := newFakeNet(lo(), upNIC("eth0", 2, ""), upNIC("eth1", 3, ""), upNIC("eth2", 4, ""))
	fn.noCarrier["eth0"] = true
	fd := &fakeDHCP{leases: map[string]Lease{"eth1": {Address: "10.0.2.15/24", Router: "10.0.2.2", DNS: []string{"10.0.2.3"}}, "eth2": {Address: "10.9.9.9/24"}}}
	a := apply(t, "hostname: x\n", fn, fd)
	diffLines(t, "failures", failures(a.report), nil)
	if len(a.res.Leases) != 1 || a.res.Leases[0].Link != "eth1" {
		t.Errorf("leases: got %+v, want one on eth1", a.res.Leases)
	}
	if !strings.Contains(a.console, "keso: network: auto-dhcp eth1 (first link with a carrier)") ||
		!strings.Contains(a.console, "keso: network: dhcp eth1 (10.0.2.15/24, router 10.0.2.2, dns 10.0.2.3)") {
		t.Errorf("console:\n%s", a.console)
	}
	if !strings.Contains(a.resolv, "nameserver 10.0.2.3\n") {
		t.Errorf("resolv.conf: %q", a.resolv)
	}
}

func TestApplyAutoDHCPNoCarrier(t *testing.T) {
	fn := newFakeNet(lo(), upNIC("eth0", 2, ""))
	fn.noCarrier["eth0"] = true
	cfg := load(t, t.Name(), "hostname: x\n")
	p, _ := NewPlan(cfg, fn.links)
	p.WaitOnline = 300 * time.Millisecond
	rec := phase.NewRecorder("network", nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := Apply(ctx, p, fn, &fakeDHCP{}, host.FS{Root: t.TempDir()}, rec)
	<-res.Background
	fs := failures(rec.Done())
	if len(fs) != 1 || !strings.HasPrefix(fs[0], "keso.network: no network interface got a carrier (tried eth0)") {
		t.Errorf("failures: got %q", fs)
	}
}

// TestApplyCarrierWait: a static link without a carrier is waited for,
// then reported offline; an optional one is not waited for.
func TestApplyCarrierWait(t *testing.T) {
	config := `keso:
  network:
    wait_online: 400ms
    interfaces:
      - name: eth0
        addresses: [10.0.0.5/24]
      - name: eth1
        addresses: [10.1.0.5/24]
      - name: eth2
        addresses: [10.2.0.5/24]
        optional: true
`
	fn := newFakeNet(lo(), upNIC("eth0", 2, ""), upNIC("eth1", 3, ""), upNIC("eth2", 4, ""))
	fn.noCarrier["eth1"] = true
	fn.noCarrier["eth2"] = true
	a := apply(t, config, fn, &fakeDHCP{})
	diffLines(t, "offline", a.res.Offline, []string{"eth1"})
	diffLines(t, "failures", failures(a.report), []string{
		"keso.network.interfaces[1]: eth1 is not online after 400ms: no carrier (set optional: true if boot should not wait for it)",
	})
	if a.took < 400*time.Millisecond || a.took > 5*time.Second {
		t.Errorf("Apply took %s, want about wait_online (400ms)", a.took)
	}
}

// TestApplyBondFailure: a bond the kernel refuses (no bonding module) is
// one failure; its VLAN is reported, and the other links are configured.
func TestApplyBondFailure(t *testing.T) {
	config := `keso:
  network:
    wait_online: 1s
    interfaces:
      - name: eth2
        addresses: [10.2.0.5/24]
    bonds:
      - name: bond0
        interfaces: [eth0, eth1]
        addresses: [10.0.0.5/24]
    vlans:
      - {link: bond0, id: 9, addresses: [10.9.0.5/24]}
`
	fn := newFakeNet(lo(), upNIC("eth0", 2, ""), upNIC("eth1", 3, ""), upNIC("eth2", 4, ""))
	fn.fail["create-bond bond0"] = errors.New("create bond bond0 (mode active-backup): operation not supported")
	a := apply(t, config, fn, &fakeDHCP{})
	diffLines(t, "failures", failures(a.report), []string{
		"keso.network.bonds[0]: create bond bond0 (mode active-backup): operation not supported",
		"keso.network.vlans[0]: create vlan bond0.9: its parent bond0 could not be set up",
	})
	diffLines(t, "calls", fn.Calls(), []string{
		"up lo",
		"ipv6-ra eth2 off", "up eth2",
		"create-bond bond0 active-backup 100", // members are left alone
		"addr eth2 10.2.0.5/24",
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestApplyRenew: a lease is renewed at half its time; a changed address
// and name servers reach resolv.conf; a failing renewal is reported once,
// and after expiry a new lease is asked for from scratch.
func TestApplyRenew(t *testing.T) {
	config := `hostname: store-7
keso:
  network:
    interfaces:
      - {name: eth0, dhcp: true}
`
	fn := newFakeNet(lo(), upNIC("eth0", 2, ""))
	fd := &fakeDHCP{
		leases: map[string]Lease{"eth0": {Address: "10.0.0.5/24", DNS: []string{"10.0.0.1"}, LeaseTime: 400 * time.Millisecond}},
		renew: map[string][]Lease{"eth0": {
			{Address: "10.0.0.5/24", DNS: []string{"10.0.0.1"}, LeaseTime: 400 * time.Millisecond},
			{Address: "10.0.0.6/24", DNS: []string{"10.0.0.2"}, LeaseTime: 400 * time.Millisecond},
			// then renewals fail: expiry, then a new exchange
		}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := t.TempDir()
	var console bytes.Buffer
	var cmu sync.Mutex
	rec := phase.NewRecorder("network", lockedWriter{&cmu, &console}, nil)
	res := Run(ctx, load(t, t.Name(), config), fn, fd, host.FS{Root: root}, rec)
	<-res.Background
	deadline := time.Now().Add(5 * time.Second)
	sawNew := false // resolv.conf had the renewed lease's name server
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(filepath.Join(root, "etc", "resolv.conf")); strings.Contains(string(b), "nameserver 10.0.0.2\n") {
			sawNew = true
		}
		n := 0
		for _, c := range fd.Calls() {
			if c == "dhcp eth0" {
				n++
			}
		}
		if n >= 2 && sawNew {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-res.Stopped // the renewals write resolv.conf into root until they return
	calls := fd.Calls()
	if len(calls) < 5 {
		t.Fatalf("dhcp calls: %v", calls)
	}
	diffLines(t, "first dhcp calls", calls[:4], []string{"dhcp eth0", "renew eth0 10.0.0.5/24", "renew eth0 10.0.0.5/24", "renew eth0 10.0.0.6/24"})
	if !contains(calls[4:], "dhcp eth0") {
		t.Errorf("no new exchange after the lease expired: %v", calls)
	}
	if !sawNew {
		t.Errorf("resolv.conf never had the renewed lease's name server 10.0.0.2")
	}
	cmu.Lock()
	out := console.String()
	cmu.Unlock()
	if !strings.Contains(out, "keso: network: dhcp eth0 (new lease 10.0.0.6/24, dns 10.0.0.2)") {
		t.Errorf("console lacks the new lease:\n%s", out)
	}
	if n := strings.Count(out, "renew dhcp lease 10.0.0.6/24 on eth0: no answer (keeping 10.0.0.6/24, retrying)"); n != 1 {
		t.Errorf("the failing renewal was reported %d times, want once:\n%s", n, out)
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if len(fd.hostnames) == 0 || fd.hostnames[0] != "store-7" {
		t.Errorf("hostname sent: %q, want store-7", fd.hostnames)
	}
}

// lateNet is a fakeNet whose eth1 appears only after a while (a USB NIC).
type lateNet struct {
	*fakeNet
	appear time.Time
}

func (l *lateNet) Links() ([]Link, error) {
	ls, err := l.fakeNet.Links()
	if time.Now().Before(l.appear) {
		var out []Link
		for _, x := range ls {
			if x.Name != "eth1" {
				out = append(out, x)
			}
		}
		return out, err
	}
	return ls, err
}

// TestRunWaitsForLateLinks: Run re-observes while the config names links
// that do not exist yet, up to LinkSettle.
func TestRunWaitsForLateLinks(t *testing.T) {
	defer func(d time.Duration) { LinkSettle = d }(LinkSettle)
	LinkSettle = 2 * time.Second
	config := `keso:
  network:
    wait_online: 3s
    interfaces:
      - {name: eth1, addresses: [10.1.0.5/24]}
`
	for _, tt := range []struct {
		name    string
		after   time.Duration
		wantErr string
	}{
		{"appears after 300ms", 300 * time.Millisecond, ""},
		{"never appears", time.Hour, `keso.network.interfaces[0].name: no network interface is named "eth1" (links seen: eth0)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fn := &lateNet{newFakeNet(lo(), upNIC("eth0", 2, ""), upNIC("eth1", 3, "")), time.Now().Add(tt.after)}
			rec := phase.NewRecorder("network", nil, nil)
			start := time.Now()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res := Run(ctx, load(t, t.Name(), config), fn, &fakeDHCP{}, host.FS{Root: t.TempDir()}, rec)
			<-res.Background
			took := time.Since(start)
			rep := rec.Done()
			if tt.wantErr == "" {
				diffLines(t, "failures", failures(rep), nil)
				if !contains(fn.Calls(), "addr eth1 10.1.0.5/24") || took < tt.after {
					t.Errorf("eth1 not configured after it appeared (took %s): %v", took, fn.Calls())
				}
				return
			}
			diffLines(t, "failures", failures(rep), []string{tt.wantErr})
			if took < LinkSettle || took > LinkSettle+3*time.Second {
				t.Errorf("took %s, want about LinkSettle (%s)", took, LinkSettle)
			}
		})
	}
}

// TestApplyRetry: a link whose DHCP server was down at boot is reported,
// then gets its lease in the background when the server comes back.
func TestApplyRetry(t *testing.T) {
	defer func(d time.Duration) { RetryBackoff = d }(RetryBackoff)
	RetryBackoff = 200 * time.Millisecond
	config := `keso:
  network:
    wait_online: 300ms
    interfaces:
      - {name: eth0, dhcp: true}
`
	fn := newFakeNet(lo(), upNIC("eth0", 2, ""))
	fd := &fakeDHCP{
		leases: map[string]Lease{"eth0": {Address: "10.0.0.5/24", DNS: []string{"10.0.0.1"}}},
		from:   map[string]time.Time{"eth0": time.Now().Add(600 * time.Millisecond)},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := t.TempDir()
	var console bytes.Buffer
	var cmu sync.Mutex
	rec := phase.NewRecorder("network", lockedWriter{&cmu, &console}, nil)
	res := Run(ctx, load(t, t.Name(), config), fn, fd, host.FS{Root: root}, rec)
	<-res.Background
	fs := failures(rec.Done())
	if len(fs) != 1 || !strings.HasSuffix(fs[0], "; retrying in the background") {
		t.Errorf("failures: %q", fs)
	}
	deadline := time.Now().Add(5 * time.Second)
	var resolv []byte
	for time.Now().Before(deadline) {
		if resolv, _ = os.ReadFile(filepath.Join(root, "etc", "resolv.conf")); len(resolv) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(string(resolv), "nameserver 10.0.0.1\n") {
		t.Errorf("resolv.conf after the late lease: %q", resolv)
	}
	cmu.Lock()
	defer cmu.Unlock()
	if !strings.Contains(console.String(), "keso: network: dhcp eth0 (10.0.0.5/24, dns 10.0.0.1, after retrying)") {
		t.Errorf("console:\n%s", console.String())
	}
}
