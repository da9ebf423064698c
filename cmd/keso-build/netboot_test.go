package main

import (
	"net"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/pxe"
)

func TestFullDHCP(t *testing.T) {
	tests := []struct {
		rng, router, dns string
		want             string // error substring; "" for success
	}{
		{"10.0.0.100-10.0.0.199", "10.0.0.1", "1.1.1.1, 8.8.8.8", ""},
		{"10.0.0.100", "", "", "needs the addresses to hand out"},
		{"10.0.0.100-x", "", "", "needs the addresses to hand out"},
		{"10.0.0.100-10.0.0.199", "gw", "", `--router "gw" is not an IPv4 address`},
		{"10.0.0.100-10.0.0.199", "", "1.1.1.1,dns", `--dns "dns" is not an IPv4 address`},
	}
	for _, tt := range tests {
		var c pxe.Config
		err := fullDHCP(&c, tt.rng, tt.router, tt.dns)
		if tt.want == "" {
			if err != nil || !c.RangeStart.Equal(net.IPv4(10, 0, 0, 100)) || !c.RangeEnd.Equal(net.IPv4(10, 0, 0, 199)) || len(c.DNS) != 2 || !c.Router.Equal(net.IPv4(10, 0, 0, 1)) {
				t.Errorf("fullDHCP(%q, %q, %q) = %+v, %v", tt.rng, tt.router, tt.dns, c, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("fullDHCP(%q, %q, %q) error = %v, want %q", tt.rng, tt.router, tt.dns, err, tt.want)
		}
	}
}

func TestIfaceIPv4(t *testing.T) {
	if ip, err := ifaceIPv4("lo", ""); err != nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("ifaceIPv4(lo) = %v, %v; want 127.0.0.1", ip, err)
	}
	if ip, err := ifaceIPv4("lo", "10.1.2.3"); err != nil || !ip.Equal(net.IPv4(10, 1, 2, 3)) {
		t.Errorf("ifaceIPv4(lo, 10.1.2.3) = %v, %v", ip, err)
	}
	for _, bad := range [][2]string{{"lo", "::1"}, {"no-such-if0", ""}} {
		if _, err := ifaceIPv4(bad[0], bad[1]); err == nil {
			t.Errorf("ifaceIPv4(%q, %q): no error", bad[0], bad[1])
		}
	}
}

func TestNetbootUsage(t *testing.T) {
	if got := netboot(nil); got != 2 {
		t.Errorf("netboot() = %d, want 2 (usage)", got)
	}
	if got := netboot([]string{"serve"}); got != 1 {
		t.Errorf("netboot serve without --iface = %d, want 1", got)
	}
	if got := netbootStatus([]string{"--state", t.TempDir()}); got != 1 {
		t.Errorf("netboot status of an empty folder = %d, want 1", got)
	}
}
