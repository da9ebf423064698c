package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/test/e2e/qemu"
)

// wifiConfig loads mac80211_hwsim (two virtual radios on one simulated
// medium: wlan0, wlan1), makes wlan1 a WPA2-PSK access point with the
// image's own wpa_supplicant in AP mode (boot_cmd runs before the wifi
// phase), and lists that network under wifi:, so the agent's supplicant on
// wlan0 must scan, find and join it with the passphrase. The network
// block gives wlan0 a static address so the network phase does not wait
// for a DHCP server that is not there.
const wifiConfig = `#cloud-config
write_files:
  - path: /etc/keso-e2e-ap.conf
    permissions: "0600"
    content: |
      network={
        ssid="keso-e2e"
        mode=2
        frequency=2412
        key_mgmt=WPA-PSK
        proto=RSN
        pairwise=CCMP
        group=CCMP
        psk="correct horse battery"
      }
boot_cmd:
  - [/usr/sbin/wpa_supplicant, -B, -i, wlan1, -c, /etc/keso-e2e-ap.conf, -D, nl80211]
k3os:
  modules: [mac80211_hwsim]
  wifi:
    - name: keso-e2e
      passphrase: correct horse battery
keso:
  network:
    wait_online: 5s
    interfaces:
      - name: wlan0
        addresses: [192.168.77.2/24]
`

// TestWiFiJoinsNetworkArm64: the arm64 image's wpa_supplicant (Debian's,
// shipped with its shared libraries) runs in the guest, loads the config the
// wifi phase rendered from wifi:, scans on wlan0 and associates with the
// access point on wlan1; the phase reports the association and boot goes
// on to the k3s handoff.
func TestWiFiJoinsNetworkArm64(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	a := artifacts(t, "arm64")
	nbDir := filepath.Dir(a.file(t, "netboot/boot.ipxe"))
	disk := overlayDisk(t, a.file(t, "keso-arm64.img"), 0)
	iso := seed(t, wifiConfig, "instance-id: wifi-1\nlocal-hostname: wifi-node\n")
	// Direct kernel boot of slot a (the UEFI path is covered by
	// TestBootArm64RawDisk); the seed is a second virtio disk.
	vm := qemu.Start(t, qemu.Config{LogDir: logDir(t), Name: "wifi-arm64", Arch: "arm64", Firmware: qemu.Direct,
		Kernel: filepath.Join(nbDir, "vmlinuz"), Initrd: filepath.Join(nbDir, "initrd"),
		Append: "console=ttyAMA0,115200 panic=10 keso.slot=a", Disks: []string{disk, iso}})

	assoc := regexp.MustCompile(`keso: wifi: associated wlan0 \(ssid "keso-e2e", bssid ([0-9a-f:]{17}), ([A-Z0-9-]+), [0-9.]+m?s\)`)
	m, took, err := vm.Expect(assoc, bootTimeout)
	if err != nil {
		t.Fatalf("the wifi phase did not report an association: %v", err)
	}
	t.Logf("associated after %s (QEMU start), bssid %s, key management %s", took.Round(100*time.Millisecond), m[1], m[2])
	if m[2] != "WPA2-PSK" {
		t.Errorf("key management = %s, want WPA2-PSK (the access point offers only that)", m[2])
	}
	s, _ := handoff(t, vm)
	vm.Stop()
	checkCommon(t, s, a, "disk")
	c := vm.Console()
	for _, want := range []string{
		"keso: wifi: write /run/keso/wpa_supplicant.conf (1 network(s): keso-e2e)",
		"keso: wifi: start wpa_supplicant (wlan0)",
		// wpa_supplicant's own output, relayed by the agent: it ran with
		// its shared libraries and joined with the PSK.
		"keso: wifi: wlan0: CTRL-EVENT-CONNECTED - Connection to " + m[1] + " completed",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if strings.Contains(c, "keso: wifi: error") {
		t.Errorf("the wifi phase reported an error:\n%s", grepLines(c, "keso: wifi:"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
