package main

import (
	"os"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/netconf"
)

func TestNetplan(t *testing.T) {
	name := "../../config-examples/06-bonded-uplink.yaml"
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	r := cloudconfig.LoadFile(name, data)
	links := []netconf.Link{{Name: "lo", Loopback: true}, {Name: "enp1s0f0", Kind: "device"}}
	var out strings.Builder
	if code := printNetplan(&out, r, links); code != 1 {
		t.Errorf("exit code %d, want 1 (enp1s0f1 is missing)", code)
	}
	for _, want := range []string{
		"mtu enp1s0f0 9000                                   # keso.network.interfaces[0].mtu",
		"wait up to 1m0s for: [enp1s0f0]", // the bond is left out whole
		name + ":16:32: error: keso.network.bonds[0].interfaces[1]: no network interface is named \"enp1s0f1\"",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
