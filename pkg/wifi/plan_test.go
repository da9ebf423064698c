package wifi

import (
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/cloudconfig"
)

func cfgWith(nets ...cloudconfig.Wifi) cloudconfig.Config {
	var c cloudconfig.Config
	c.Keso.Wifi = nets
	return c
}

func TestRenderNetworkBlocks(t *testing.T) {
	hexPSK := strings.Repeat("AB", 32)
	conf, names, probs := Render([]cloudconfig.Wifi{
		{Name: "store-wifi", Passphrase: `pa"ss word`},
		{Name: "backoffice", Passphrase: hexPSK},
		{Name: "guest"},
		{Name: "café\x01"},
		{Name: "short", Passphrase: "1234567"},
		{Name: "nonascii", Passphrase: "pässwörter"},
		{Name: strings.Repeat("x", 33), Passphrase: "longenough"},
		{Name: "hash", Passphrase: `a"b#c"d"e`},
	})
	want := `# Written by keso at boot from the cloud-config's wifi: list.
ctrl_interface=/run/wpa_supplicant
update_config=0
ap_scan=1

network={
	ssid="store-wifi"
	scan_ssid=1
	key_mgmt=WPA-PSK WPA-PSK-SHA256 SAE
	ieee80211w=1
	psk="pa"ss word"
	priority=8
}

network={
	ssid="backoffice"
	scan_ssid=1
	key_mgmt=WPA-PSK WPA-PSK-SHA256
	psk=` + strings.ToLower(hexPSK) + `
	priority=7
}

network={
	ssid="guest"
	scan_ssid=1
	key_mgmt=NONE
	priority=6
}

network={
	ssid=636166c3a901
	scan_ssid=1
	key_mgmt=NONE
	priority=5
}
`
	if got := string(conf); got != want {
		t.Errorf("Render conf:\n%s\nwant:\n%s", got, want)
	}
	if got, want := strings.Join(names, ","), "store-wifi,backoffice,guest,café\x01"; got != want {
		t.Errorf("names = %q, want %q", got, want)
	}
	wantProbs := []struct{ path, err string }{
		{"keso.wifi[4].passphrase", "8–63 characters"},
		{"keso.wifi[5].passphrase", "printable ASCII"},
		{"keso.wifi[6].name", "1–32 bytes, got 33"},
		{"keso.wifi[7].passphrase", "both"},
	}
	if len(probs) != len(wantProbs) {
		t.Fatalf("problems = %v, want %d", probs, len(wantProbs))
	}
	for i, w := range wantProbs {
		if probs[i].Path != w.path || !strings.Contains(probs[i].Err.Error(), w.err) {
			t.Errorf("problem %d = %v, want %s: …%s…", i, probs[i], w.path, w.err)
		}
	}
}

func TestNewPlan(t *testing.T) {
	eth := Link{Name: "eth0"}
	wl0 := Link{Name: "wlan0", Wireless: true}
	wl1 := Link{Name: "wlan1", Wireless: true}
	net := cloudconfig.Wifi{Name: "store", Passphrase: "correct horse"}
	for _, tc := range []struct {
		name      string
		cfg       cloudconfig.Config
		links     []Link
		wantIface string
		wantProb  string
	}{
		{"no wifi config", cfgWith(), []Link{eth, wl0}, "", ""},
		{"first wireless link", cfgWith(net), []Link{eth, wl1, wl0}, "wlan1", ""},
		{"no wireless link", cfgWith(net), []Link{{Name: "lo"}, eth}, "", "no wireless network interface (links seen: lo, eth0)"},
		{"no links at all", cfgWith(net), nil, "", "links seen: none"},
		{"every entry bad", cfgWith(cloudconfig.Wifi{Name: "x", Passphrase: "short"}), []Link{wl0}, "", "8–63"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, probs := NewPlan(tc.cfg, tc.links)
			if p.Interface != tc.wantIface {
				t.Errorf("Interface = %q, want %q", p.Interface, tc.wantIface)
			}
			gotProb := ""
			if len(probs) > 0 {
				gotProb = probs[0].Error()
			}
			if (tc.wantProb == "") != (gotProb == "") || !strings.Contains(gotProb, tc.wantProb) {
				t.Errorf("problems = %v, want one containing %q", probs, tc.wantProb)
			}
			if tc.wantIface != "" {
				want := "/usr/sbin/wpa_supplicant -i " + tc.wantIface + " -c /run/keso/wpa_supplicant.conf -D nl80211"
				if got := strings.Join(p.Argv, " "); got != want {
					t.Errorf("Argv = %q, want %q", got, want)
				}
				if !strings.Contains(string(p.Conf), `ssid="store"`) {
					t.Errorf("Conf has no block for the network:\n%s", p.Conf)
				}
			}
		})
	}
}

func TestNetwork(t *testing.T) {
	withNet := func(n *cloudconfig.Network) cloudconfig.Config {
		c := cfgWith(cloudconfig.Wifi{Name: "s"})
		c.Keso.Network = n
		return c
	}
	eth := cloudconfig.Interface{Name: "eth0", Addressing: cloudconfig.Addressing{DHCP: true}}
	added := cloudconfig.Interface{Name: "wlan0", Addressing: cloudconfig.Addressing{DHCP: true, Optional: true}}
	for _, tc := range []struct {
		name  string
		cfg   cloudconfig.Config
		iface string
		want  []cloudconfig.Interface // nil: no network block
	}{
		{"no network block: default DHCP picks the link", withNet(nil), "wlan0", nil},
		{"block without the link: added, optional", withNet(&cloudconfig.Network{Interfaces: []cloudconfig.Interface{eth}}), "wlan0", []cloudconfig.Interface{eth, added}},
		{"block names the link", withNet(&cloudconfig.Network{Interfaces: []cloudconfig.Interface{{Name: "wlan0", Addressing: cloudconfig.Addressing{Addresses: []string{"10.0.0.2/24"}}}}}), "wlan0",
			[]cloudconfig.Interface{{Name: "wlan0", Addressing: cloudconfig.Addressing{Addresses: []string{"10.0.0.2/24"}}}}},
		{"block matches by prefix", withNet(&cloudconfig.Network{Interfaces: []cloudconfig.Interface{{Name: "wl*"}}}), "wlan0", []cloudconfig.Interface{{Name: "wl*"}}},
		{"no wireless link", withNet(&cloudconfig.Network{Interfaces: []cloudconfig.Interface{eth}}), "", []cloudconfig.Interface{eth}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.cfg.Keso.Network
			var n0 int
			if before != nil {
				n0 = len(before.Interfaces)
			}
			got := Network(tc.cfg, tc.iface)
			if tc.want == nil {
				if got.Keso.Network != nil {
					t.Fatalf("network = %+v, want none", got.Keso.Network)
				}
				return
			}
			if len(got.Keso.Network.Interfaces) != len(tc.want) {
				t.Fatalf("interfaces = %+v, want %+v", got.Keso.Network.Interfaces, tc.want)
			}
			for i := range tc.want {
				g, w := got.Keso.Network.Interfaces[i], tc.want[i]
				if g.Name != w.Name || g.DHCP != w.DHCP || g.Optional != w.Optional || len(g.Addresses) != len(w.Addresses) {
					t.Errorf("interface %d = %+v, want %+v", i, g, w)
				}
			}
			if before != nil && len(before.Interfaces) != n0 {
				t.Errorf("Network changed the caller's config (%d interfaces, was %d)", len(before.Interfaces), n0)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	got := ParseStatus("bssid=02:00:00:00:01:00\nfreq=2412\nssid=keso=test\nwpa_state=COMPLETED\nkey_mgmt=WPA2-PSK\n")
	for k, want := range map[string]string{"wpa_state": "COMPLETED", "ssid": "keso=test", "key_mgmt": "WPA2-PSK", "freq": "2412"} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
}

func TestInRange(t *testing.T) {
	for _, tc := range []struct{ scan, want string }{
		{"bssid / frequency / signal level / flags / ssid\n", "no networks in range"},
		{"bssid / frequency / signal level / flags / ssid\n02:00:00:00:01:00\t2412\t-30\t[WPA2-PSK-CCMP][ESS]\tkeso-e2e\n02:00:00:00:02:00\t5180\t-70\t[ESS]\t\n",
			`networks in range: "keso-e2e" [WPA2-PSK-CCMP][ESS], "(hidden)" [ESS]`},
	} {
		if got := InRange(tc.scan); got != tc.want {
			t.Errorf("InRange(%q) = %q, want %q", tc.scan, got, tc.want)
		}
	}
}
