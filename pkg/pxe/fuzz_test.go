package pxe

import (
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzAnswer feeds any packet that parses to Answer in both modes. Any
// reply in Proxy mode hands out no address (yiaddr 0.0.0.0); one in Full
// mode hands out nothing outside the range; every reply goes onto the wire
// and parses back. The seeds are the captured client requests.
func FuzzAnswer(f *testing.F) {
	for _, name := range captured {
		f.Add(loadRaw(f, name))
	}
	proxy := newServer(f, proxyConfig())
	full := newServer(f, fullConfig())
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		if rep, ev := proxy.Answer(req); rep != nil {
			if !rep.YourIPAddr.Equal(net.IPv4zero) {
				t.Fatalf("proxy reply hands out %v (%s)", rep.YourIPAddr, ev.Detail)
			}
			if _, err := dhcpv4.FromBytes(rep.ToBytes()); err != nil {
				t.Fatalf("proxy reply does not parse back: %v", err)
			}
		}
		if rep, ev := full.Answer(req); rep != nil {
			if y := rep.YourIPAddr; !y.Equal(net.IPv4zero) && !full.inRange(y) {
				t.Fatalf("full reply hands out %v outside the range (%s)", y, ev.Detail)
			}
			if _, err := dhcpv4.FromBytes(rep.ToBytes()); err != nil {
				t.Fatalf("full reply does not parse back: %v", err)
			}
		}
	})
}
