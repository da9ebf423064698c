package wifi

import (
	"maps"
	"sort"
	"strings"
	"testing"
)

// FuzzParseStatus: any control-socket STATUS reply gives key=value pairs
// whose keys hold no '=' or line break, and writing them back as lines
// parses to the same pairs.
func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{
		"bssid=02:00:00:00:01:00\nfreq=2412\nssid=keso=test\nwpa_state=COMPLETED\nkey_mgmt=WPA2-PSK\n",
		"bssid=02:00:00:00:01:00\nfreq=2412\nssid=shop\nid=0\nmode=station\nwifi_generation=4\npairwise_cipher=CCMP\n" +
			"group_cipher=CCMP\nkey_mgmt=WPA2-PSK\nwpa_state=COMPLETED\nip_address=192.168.1.20\naddress=b8:27:eb:00:00:01\nuuid=0c5d-...\n",
		"wpa_state=SCANNING\r\naddress=02:00:00:00:00:00\r\n", "wpa_state=DISCONNECTED\n", "FAIL\n", "", "=\n==\n a = b \n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := ParseStatus(s)
		keys := make([]string, 0, len(m))
		for k := range m {
			if strings.ContainsAny(k, "=\n") || k != strings.TrimLeft(k, " \t\r\v\f") {
				t.Fatalf("ParseStatus(%q): key %q", s, k)
			}
			if strings.Contains(m[k], "\n") {
				t.Fatalf("ParseStatus(%q): value %q of %q holds a line break", s, m[k], k)
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(k + "=" + m[k] + "\n")
		}
		if again := ParseStatus(b.String()); !maps.Equal(again, m) {
			t.Fatalf("ParseStatus(%q) = %q; written back %q it parses to %q", s, m, b.String(), again)
		}
	})
}

// FuzzInRange: any SCAN_RESULTS reply is summarised on one line.
func FuzzInRange(f *testing.F) {
	for _, s := range []string{
		"bssid / frequency / signal level / flags / ssid\n",
		"bssid / frequency / signal level / flags / ssid\n02:00:00:00:01:00\t2412\t-30\t[WPA2-PSK-CCMP][ESS]\tkeso-e2e\n02:00:00:00:02:00\t5180\t-70\t[ESS]\t\n",
		"a\tb\tc\td\te\tf\n", "FAIL-BUSY\n", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := InRange(s)
		if !strings.HasPrefix(got, "networks in range: ") && got != "no networks in range" {
			t.Fatalf("InRange(%q) = %q", s, got)
		}
		if strings.Contains(got, "\n") {
			// SSIDs are quoted (%q); the flags column is raw, but a line
			// of the reply holds no line break.
			t.Fatalf("InRange(%q) = %q spans lines", s, got)
		}
	})
}
