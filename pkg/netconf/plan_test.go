package netconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
)

func lo() Link {
	return Link{Name: "lo", Index: 1, Kind: "device", Loopback: true, Up: true, Carrier: true}
}

func nic(name string, index int, mac string) Link {
	return Link{Name: name, Index: index, MAC: mac, Kind: "device", MTU: 1500}
}

// load decodes a config and fails the test on any diagnostic.
func load(t *testing.T, name, src string) cloudconfig.Config {
	t.Helper()
	r := cloudconfig.LoadFile(name, []byte(src))
	for _, d := range r.Diagnostics {
		t.Fatalf("config %s: %s", name, d)
	}
	return r.Config
}

func loadExample(t *testing.T, file string) cloudconfig.Config {
	t.Helper()
	path := filepath.Join("..", "..", "config-examples", file)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return load(t, path, string(b))
}

func lines(p Plan) []string {
	var out []string
	for _, a := range p.Actions {
		out = append(out, a.String())
	}
	return out
}

func problems(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Error())
	}
	return out
}

func diffLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestPlanExamples(t *testing.T) {
	tests := []struct {
		file       string
		observed   []Link
		want       []string
		wantWait   []string
		wantNS     []string
		wantOnline time.Duration
	}{
		{
			file:     "05-static-ip-two-nics-vlan.yaml",
			observed: []Link{lo(), nic("eth0", 2, "52:54:00:ab:cd:01"), nic("eth1", 3, "52:54:00:ab:cd:02")},
			want: []string{
				"up lo",
				"ipv6-ra eth0 off",
				"up eth0",
				"ipv6-ra eth1 off",
				"mtu eth1 9000",
				"up eth1",
				"create-vlan pos on eth0 id=30",
				"ipv6-ra pos off",
				"up pos",
				"addr eth0 192.168.10.20/24",
				"addr eth1 172.16.5.20/24",
				"addr pos 10.30.0.20/24",
				"route eth0 default via 192.168.10.1 metric 0",
				"route eth1 172.16.0.0/12 via 172.16.5.1 metric 0",
				"resolv /etc/resolv.conf",
			},
			wantWait:   []string{"eth0", "eth1"}, // the VLAN is optional
			wantNS:     []string{"192.168.10.1", "1.1.1.1"},
			wantOnline: 90 * time.Second,
		},
		{
			file:     "06-bonded-uplink.yaml",
			observed: []Link{lo(), nic("enp1s0f0", 2, "0c:c4:7a:00:00:01"), nic("enp1s0f1", 3, "0c:c4:7a:00:00:02")},
			want: []string{
				"up lo",
				"create-bond bond0 mode=802.3ad miimon=100",
				"mtu enp1s0f0 9000",
				"down enp1s0f0",
				"enslave enp1s0f0 to bond0",
				"mtu enp1s0f1 9000",
				"down enp1s0f1",
				"enslave enp1s0f1 to bond0",
				"ipv6-ra bond0 off",
				"mtu bond0 9000",
				"up bond0",
				"dhcp bond0 metric 1024",
				"resolv /etc/resolv.conf",
			},
			wantWait:   []string{"bond0"},
			wantOnline: DefaultWaitOnline,
		},
		{
			file:     "01-single-node-store-server.yaml",
			observed: []Link{lo(), nic("eth0", 2, "52:54:00:00:00:01"), nic("eth1", 3, "52:54:00:00:00:02"), {Name: "sit0", Index: 4, Kind: "sit"}},
			want: []string{
				"up lo",
				"auto-dhcp first carrier of [eth0 eth1] metric 1024",
				"resolv /etc/resolv.conf",
			},
			wantWait:   []string{""},
			wantOnline: DefaultWaitOnline,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg := loadExample(t, tt.file)
			p, probs := NewPlan(cfg, tt.observed)
			if len(probs) != 0 {
				t.Errorf("problems: %v", problems(probs))
			}
			diffLines(t, "actions", lines(p), tt.want)
			var waits []string
			for _, w := range p.Wait {
				waits = append(waits, w.Link)
			}
			diffLines(t, "wait", waits, tt.wantWait)
			diffLines(t, "nameservers", p.Nameservers, tt.wantNS)
			if p.WaitOnline != tt.wantOnline {
				t.Errorf("wait online: got %s, want %s", p.WaitOnline, tt.wantOnline)
			}
		})
	}
}

// TestPlanPaths: every action names the config path that asked for it.
func TestPlanPaths(t *testing.T) {
	cfg := loadExample(t, "05-static-ip-two-nics-vlan.yaml")
	p, _ := NewPlan(cfg, []Link{lo(), nic("eth0", 2, ""), nic("eth1", 3, "52:54:00:ab:cd:02")})
	got := map[string]string{}
	for _, a := range p.Actions {
		got[a.String()] = a.Path
	}
	want := map[string]string{
		"mtu eth1 9000":                                    "keso.network.interfaces[1].mtu",
		"create-vlan pos on eth0 id=30":                    "keso.network.vlans[0]",
		"addr pos 10.30.0.20/24":                           "keso.network.vlans[0].addresses[0]",
		"route eth0 default via 192.168.10.1 metric 0":     "keso.network.interfaces[0].gateway",
		"route eth1 172.16.0.0/12 via 172.16.5.1 metric 0": "keso.network.interfaces[1].routes[0]",
	}
	for action, path := range want {
		if got[action] != path {
			t.Errorf("%s: got path %q, want %q", action, got[action], path)
		}
	}
}

func TestPlanCases(t *testing.T) {
	two := []Link{lo(), nic("eth0", 2, "52:54:00:00:00:01"), nic("eth1", 3, "52:54:00:00:00:02")}
	tests := []struct {
		name      string
		config    string
		observed  []Link
		want      []string
		wantProbs []string
		wantNS    []string
	}{
		{
			name: "mac match is case-insensitive; dhcp, ipv6 ra and dns",
			config: `keso:
  dns_nameservers: [9.9.9.9, 10.0.0.1]
  network:
    interfaces:
      - mac: "52:54:00:00:00:02"
        dhcp: true
        ipv6_ra: true
        dns: [10.0.0.1, 10.0.0.2]
`,
			observed: []Link{lo(), nic("eth0", 2, "52:54:00:00:00:01"), nic("eth1", 3, "52:54:00:00:00:02")},
			want: []string{
				"up lo",
				"ipv6-ra eth1 on",
				"up eth1",
				"dhcp eth1 metric 1024",
				"resolv /etc/resolv.conf",
			},
			wantNS: []string{"9.9.9.9", "10.0.0.1", "10.0.0.2"},
		},
		{
			name: "missing mac and missing name are problems; the rest is planned",
			config: `keso:
  network:
    interfaces:
      - mac: "52:54:00:99:99:99"
        addresses: [10.0.0.5/24]
      - name: eth9
        dhcp: true
      - name: eth0
        dhcp: true
`,
			observed: two,
			want: []string{
				"up lo",
				"ipv6-ra eth0 off",
				"up eth0",
				"dhcp eth0 metric 1024",
				"resolv /etc/resolv.conf",
			},
			wantProbs: []string{
				`keso.network.interfaces[0].mac: no network interface has MAC 52:54:00:99:99:99 (links seen: eth0 52:54:00:00:00:01, eth1 52:54:00:00:00:02)`,
				`keso.network.interfaces[1].name: no network interface is named "eth9" (links seen: eth0 52:54:00:00:00:01, eth1 52:54:00:00:00:02)`,
			},
		},
		{
			name: "prefix takes the links exact entries left, physical only",
			config: `keso:
  network:
    interfaces:
      - name: "e*"
        dhcp: true
        optional: true
      - name: eth1
        addresses: [10.1.0.5/24]
`,
			observed: append(two, Link{Name: "eth0.7", Index: 4, Kind: "vlan"}, Link{Name: "ebond", Index: 5, Kind: "bond"}),
			want: []string{
				"up lo",
				"ipv6-ra eth0 off",
				"up eth0",
				"ipv6-ra eth1 off",
				"up eth1",
				"addr eth1 10.1.0.5/24",
				"dhcp eth0 metric 1024 optional",
				"resolv /etc/resolv.conf",
			},
		},
		{
			name: "a prefix with nothing left to match is a problem",
			config: `keso:
  network:
    interfaces:
      - name: eth0
        dhcp: true
      - name: "wl*"
        dhcp: true
`,
			observed: two,
			want: []string{
				"up lo",
				"ipv6-ra eth0 off",
				"up eth0",
				"dhcp eth0 metric 1024",
				"resolv /etc/resolv.conf",
			},
			wantProbs: []string{`keso.network.interfaces[1].name: no unconfigured network interface matches "wl*" (links seen: eth0 52:54:00:00:00:01, eth1 52:54:00:00:00:02)`},
		},
		{
			name: "the same link twice",
			config: `keso:
  network:
    interfaces:
      - name: eth0
        dhcp: true
      - mac: "52:54:00:00:00:01"
        addresses: [10.0.0.5/24]
`,
			observed: two,
			want: []string{
				"up lo",
				"ipv6-ra eth0 off",
				"up eth0",
				"dhcp eth0 metric 1024",
				"resolv /etc/resolv.conf",
			},
			wantProbs: []string{"keso.network.interfaces[1]: eth0 is already configured by keso.network.interfaces[0]"},
		},
		{
			name: "bond member with addressing, missing member, vlan on a missing parent",
			config: `keso:
  network:
    interfaces:
      - name: eth0
        addresses: [10.0.0.5/24]
    bonds:
      - name: bond0
        interfaces: [eth0, eth1]
      - name: bond1
        interfaces: [eth7]
    vlans:
      - link: eth5
        id: 10
`,
			observed: two,
			want: []string{
				"up lo",
				"ipv6-ra eth0 off",
				"up eth0",
				"addr eth0 10.0.0.5/24",
				"resolv /etc/resolv.conf",
			},
			wantProbs: []string{
				"keso.network.interfaces[0]: eth0 is a member of bond bond0: put dhcp, addresses, routes and dns on the bond",
				`keso.network.bonds[1].interfaces[0]: no network interface is named "eth7" (links seen: eth0 52:54:00:00:00:01, eth1 52:54:00:00:00:02)`,
				`keso.network.vlans[0].link: no network interface or bond is named "eth5" (links seen: eth0 52:54:00:00:00:01, eth1 52:54:00:00:00:02)`,
			},
		},
		{
			name: "bond defaults, vlan on the bond with default name, unconfigured vlan parent brought up",
			config: `keso:
  network:
    bonds:
      - name: bond0
        interfaces: [eth0, eth1]
        addresses: [10.0.0.5/24, "fd00::5/64"]
        gateway: "fe80::1"
    vlans:
      - link: bond0
        id: 100
        dhcp: true
`,
			observed: two,
			want: []string{
				"up lo",
				"create-bond bond0 mode=active-backup miimon=100",
				"down eth0",
				"enslave eth0 to bond0",
				"down eth1",
				"enslave eth1 to bond0",
				"ipv6-ra bond0 off",
				"up bond0",
				"create-vlan bond0.100 on bond0 id=100",
				"ipv6-ra bond0.100 off",
				"up bond0.100",
				"addr bond0 10.0.0.5/24",
				"addr bond0 fd00::5/64",
				"route bond0 default via fe80::1 metric 0",
				"dhcp bond0.100 metric 1024",
				"resolv /etc/resolv.conf",
			},
		},
		{
			name: "re-applying: existing bond and vlan are not created again, enslaved members left alone",
			config: `keso:
  network:
    bonds:
      - name: bond0
        interfaces: [eth0, eth1]
        dhcp: true
    vlans:
      - link: eth0
        id: 5
        name: v5
`,
			observed: []Link{lo(), {Name: "eth0", Index: 2, Kind: "device", Master: "bond0", Up: true},
				{Name: "eth1", Index: 3, Kind: "device"}, {Name: "bond0", Index: 4, Kind: "bond"}, {Name: "v5", Index: 5, Kind: "vlan"}},
			want: []string{
				"up lo",
				"down eth1",
				"enslave eth1 to bond0",
				"ipv6-ra bond0 off",
				"up bond0",
				"dhcp bond0 metric 1024",
				"resolv /etc/resolv.conf",
			},
			wantProbs: []string{"keso.network.vlans[0].link: eth0 is a member of bond bond0: put the VLAN on the bond"},
		},
		{
			name: "vlan on an unconfigured interface brings the parent up; gateway off-link is a problem",
			config: `keso:
  network:
    interfaces:
      - name: eth1
        addresses: [10.0.0.5/24]
        gateway: 10.9.9.1
    vlans:
      - link: eth0
        id: 4094
`,
			observed: two,
			want: []string{
				"up lo",
				"ipv6-ra eth1 off",
				"up eth1",
				"up eth0",
				"create-vlan eth0.4094 on eth0 id=4094",
				"ipv6-ra eth0.4094 off",
				"up eth0.4094",
				"addr eth1 10.0.0.5/24",
				"resolv /etc/resolv.conf",
			},
			wantProbs: []string{"keso.network.interfaces[0].gateway: gateway 10.9.9.1 is not inside any of the link's addresses (10.0.0.5/24)"},
		},
		{
			name: "default vlan name too long; name clash with an existing link",
			config: `keso:
  network:
    vlans:
      - link: enp0s31f6xy
        id: 1000
      - link: eth0
        id: 7
        name: eth1
`,
			observed: append(two, nic("enp0s31f6xy", 4, "")),
			want: []string{
				"up lo",
				"resolv /etc/resolv.conf",
			},
			wantProbs: []string{
				`keso.network.vlans[0].name: the default name "enp0s31f6xy.1000" is longer than 15 characters: give the VLAN a name`,
				"keso.network.vlans[1].name: eth1 already exists as a device link",
			},
		},
		{
			name: "two gateways get increasing metrics, dhcp metrics count up",
			config: `keso:
  network:
    interfaces:
      - name: eth0
        addresses: [10.0.0.5/24]
        gateway: 10.0.0.1
        routes: [{to: default, via: 10.0.0.254, metric: 50}]
      - name: eth1
        addresses: [10.1.0.5/24]
        gateway: 10.1.0.1
        dhcp: true
    vlans:
      - {link: eth0, id: 2, dhcp: true}
`,
			observed: two,
			want: []string{
				"up lo",
				"ipv6-ra eth0 off",
				"up eth0",
				"ipv6-ra eth1 off",
				"up eth1",
				"create-vlan eth0.2 on eth0 id=2",
				"ipv6-ra eth0.2 off",
				"up eth0.2",
				"addr eth0 10.0.0.5/24",
				"addr eth1 10.1.0.5/24",
				"route eth0 default via 10.0.0.1 metric 0",
				"route eth0 default via 10.0.0.254 metric 50",
				"route eth1 default via 10.1.0.1 metric 1",
				"dhcp eth1 metric 1024",
				"dhcp eth0.2 metric 1025",
				"resolv /etc/resolv.conf",
			},
		},
		{
			name:     "no network block and no physical link",
			config:   "hostname: x\n",
			observed: []Link{lo(), {Name: "dummy0", Index: 2, Kind: "dummy"}},
			want:     []string{"up lo", "resolv /etc/resolv.conf"},
			wantProbs: []string{
				"keso.network: no network interface to run DHCP on (links seen: dummy0)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := load(t, tt.name, tt.config)
			p, probs := NewPlan(cfg, tt.observed)
			diffLines(t, "actions", lines(p), tt.want)
			diffLines(t, "problems", problems(probs), tt.wantProbs)
			if tt.wantNS != nil {
				diffLines(t, "nameservers", p.Nameservers, tt.wantNS)
			}
		})
	}
}

func TestPlanWaitOnline(t *testing.T) {
	cfg := load(t, "w", "keso:\n  network:\n    wait_online: 0s\n")
	p, probs := NewPlan(cfg, []Link{lo()})
	if len(probs) != 0 || p.WaitOnline != 0 {
		t.Errorf("got %s, %v; want 0s and no problems", p.WaitOnline, problems(probs))
	}
}

func TestRenderResolv(t *testing.T) {
	tests := []struct {
		ns, search []string
		want       string
	}{
		{nil, []string{"example.com"}, ""},
		{
			[]string{"192.168.10.1", "1.1.1.1", "192.168.10.1", "2001:DB8::1", "2001:db8::1"}, []string{"a.example", "b.example", "a.example"},
			"# Written by keso-init: keso.dns_nameservers, per-link dns and DHCP.\n" +
				"nameserver 192.168.10.1\nnameserver 1.1.1.1\nnameserver 2001:db8::1\nsearch a.example b.example\n",
		},
	}
	for _, tt := range tests {
		if got := RenderResolv(tt.ns, tt.search); got != tt.want {
			t.Errorf("RenderResolv(%v, %v):\ngot  %q\nwant %q", tt.ns, tt.search, got, tt.want)
		}
	}
}
