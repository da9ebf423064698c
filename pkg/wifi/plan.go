// Package wifi is the boot agent's Wi-Fi phase: it joins the networks of
// the cloud-config's `wifi:` list (k3OS's schema: name = SSID, passphrase)
// with Debian's wpa_supplicant, which the arm images ship with exactly the
// shared libraries it loads (profile `wifi:` block, pkg/image/sharedlib).
//
// Why wpa_supplicant and not a Go supplicant: it is the supplicant every
// Wi-Fi driver is tested against (brcmfmac on the Pi 3/4 included), it does
// WPA2-PSK, WPA3-SAE with protected management frames, roaming, hidden
// networks and band steering, and Debian maintains it (security fixes come
// with the pinned bookworm package). A Go implementation of the 802.11 key
// handshakes (4-way, SAE) over nl80211 would be ours to maintain and would
// need driver offload that mac80211 drivers do not have. The price is size:
// ~15 MB of files (~6 MB compressed in the root), shipped on arm only.
//
// Decide, then do:
//
//   - NewPlan (pure) picks the wireless link (the first one in kernel order
//     that has /sys/class/net/<link>/wireless) and renders
//     wpa_supplicant.conf: one network block per entry, listed order =
//     priority; with a passphrase the block allows WPA2-PSK (also SHA256)
//     and WPA3-SAE with optional PMF, a 64-hex-digit passphrase is a raw PSK
//     (WPA2 only: SAE needs the passphrase), no passphrase is an open
//     network. Every block has scan_ssid=1, so hidden networks are found.
//   - Run (thin) writes the file (mode 0600: it holds the passphrases),
//     starts wpa_supplicant in the foreground under a small supervisor
//     (restarted if it exits, stopped on power requests), and waits a
//     bounded time for the control socket to report wpa_state=COMPLETED.
//     Association can finish later; the supplicant keeps trying.
//   - Addressing is the network phase's job (pkg/netconf): with no
//     keso.network block, it DHCPs the first link with a carrier, which is
//     the Wi-Fi link once associated when no cable is plugged in; with a
//     keso.network block that does not name the Wi-Fi link, Network adds
//     it with DHCP as an optional link, so it never holds the boot up.
package wifi

import (
	"fmt"
	"strings"

	"github.com/keso-os/keso/pkg/cloudconfig"
)

// Paths in the node.
const (
	// Supplicant is the wpa_supplicant the image ships.
	Supplicant = "/usr/sbin/wpa_supplicant"
	// ConfPath is the generated configuration (mode 0600).
	ConfPath = "/run/keso/wpa_supplicant.conf"
	// CtrlDir is the supplicant's control socket folder.
	CtrlDir = "/run/wpa_supplicant"
)

// Link is an observed network interface.
type Link struct {
	Name     string
	Wireless bool
}

// Problem is a config entry that cannot be applied.
type Problem struct {
	Path string
	Err  error
}

func (p Problem) Error() string { return p.Path + ": " + p.Err.Error() }

// Plan is what the Wi-Fi phase does.
type Plan struct {
	// Interface is the wireless link; "" when there is nothing to do.
	Interface string
	// Conf is wpa_supplicant.conf.
	Conf []byte
	// Argv starts the supplicant in the foreground.
	Argv []string
	// Networks are the SSIDs, in priority order (for messages).
	Networks []string
}

// NewPlan decides what to do for cfg on the observed links. It is pure.
// With no wifi entries the plan is empty. With entries but no wireless
// link, or entries that cannot be written, it returns problems; entries
// with problems are left out and the rest are planned.
func NewPlan(cfg cloudconfig.Config, links []Link) (Plan, []Problem) {
	nets := cfg.Keso.Wifi
	if len(nets) == 0 {
		return Plan{}, nil
	}
	conf, names, probs := Render(nets)
	iface := ""
	for _, l := range links {
		if l.Wireless {
			iface = l.Name
			break
		}
	}
	if iface == "" {
		var seen []string
		for _, l := range links {
			seen = append(seen, l.Name)
		}
		probs = append(probs, Problem{Path: "keso.wifi", Err: fmt.Errorf("no wireless network interface (links seen: %s); a Raspberry Pi 3/4 needs the brcmfmac module and its firmware", orNone(seen))})
		return Plan{}, probs
	}
	if len(names) == 0 {
		return Plan{}, probs
	}
	return Plan{
		Interface: iface,
		Conf:      conf,
		Argv:      []string{Supplicant, "-i", iface, "-c", ConfPath, "-D", "nl80211"},
		Networks:  names,
	}, probs
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// Render returns wpa_supplicant.conf for nets, the SSIDs it holds, and a
// problem per entry that cannot be written (left out).
func Render(nets []cloudconfig.Wifi) ([]byte, []string, []Problem) {
	var b strings.Builder
	b.WriteString("# Written by keso at boot from the cloud-config's wifi: list.\n")
	b.WriteString("ctrl_interface=" + CtrlDir + "\n")
	b.WriteString("update_config=0\n")
	b.WriteString("ap_scan=1\n")
	var names []string
	var probs []Problem
	for i, w := range nets {
		path := fmt.Sprintf("keso.wifi[%d]", i)
		if w.Name == "" || len(w.Name) > 32 {
			probs = append(probs, Problem{Path: path + ".name", Err: fmt.Errorf("an SSID has 1–32 bytes, got %d", len(w.Name))})
			continue
		}
		auth, err := authLines(w.Passphrase)
		if err != nil {
			probs = append(probs, Problem{Path: path + ".passphrase", Err: err})
			continue
		}
		b.WriteString("\nnetwork={\n")
		b.WriteString("\tssid=" + ssidValue(w.Name) + "\n")
		b.WriteString("\tscan_ssid=1\n")
		for _, l := range auth {
			b.WriteString("\t" + l + "\n")
		}
		// The first entry is the most preferred.
		fmt.Fprintf(&b, "\tpriority=%d\n", len(nets)-i)
		b.WriteString("}\n")
		names = append(names, w.Name)
	}
	return []byte(b.String()), names, probs
}

// ssidValue writes an SSID quoted when it is printable ASCII without a
// quote, else as hex (an SSID is any 1–32 bytes).
func ssidValue(s string) string {
	if printable(s) && !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return fmt.Sprintf("%x", s)
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// authLines are a network block's key management lines for passphrase.
func authLines(pass string) ([]string, error) {
	switch {
	case pass == "":
		return []string{"key_mgmt=NONE"}, nil
	case len(pass) == 64 && isHex(pass):
		// A raw PSK: WPA2 only (SAE derives its key from the passphrase).
		return []string{"key_mgmt=WPA-PSK WPA-PSK-SHA256", "psk=" + strings.ToLower(pass)}, nil
	case len(pass) < 8 || len(pass) > 63:
		return nil, fmt.Errorf("a WPA passphrase has 8–63 characters (or 64 hex digits), got %d", len(pass))
	case !printable(pass):
		return nil, fmt.Errorf("a WPA passphrase is printable ASCII (IEEE 802.11i); this one has other bytes")
	case strings.Contains(pass, `"`) && strings.Contains(pass, "#"):
		// wpa_supplicant.conf pairs quotes to tell a # in a value from a
		// comment; a quote inside the value can make it cut the line.
		return nil, fmt.Errorf(`a passphrase with both '"' and '#' cannot be written to wpa_supplicant.conf safely; use the 64-hex-digit PSK (wpa_passphrase) instead`)
	}
	// wpa_supplicant takes everything between the first and the last
	// quote, so a passphrase with quotes needs no escaping.
	return []string{
		"key_mgmt=WPA-PSK WPA-PSK-SHA256 SAE",
		"ieee80211w=1",
		`psk="` + pass + `"`,
	}, nil
}

// Network returns cfg with the Wi-Fi link added to an explicit
// keso.network block that does not name it (DHCP, optional, so it never
// holds the boot up). Without a keso.network block cfg is returned as it
// is: the network phase's default DHCPs the first link with a carrier.
func Network(cfg cloudconfig.Config, iface string) cloudconfig.Config {
	n := cfg.Keso.Network
	if iface == "" || n == nil {
		return cfg
	}
	for _, i := range n.Interfaces {
		if i.Name == iface || (strings.HasSuffix(i.Name, "*") && strings.HasPrefix(iface, strings.TrimSuffix(i.Name, "*"))) {
			return cfg
		}
	}
	for _, b := range n.Bonds {
		for _, m := range b.Interfaces {
			if m == iface {
				return cfg
			}
		}
	}
	nn := *n
	nn.Interfaces = append(append([]cloudconfig.Interface(nil), n.Interfaces...),
		cloudconfig.Interface{Name: iface, Addressing: cloudconfig.Addressing{DHCP: true, Optional: true}})
	cfg.Keso.Network = &nn
	return cfg
}
