package pxe

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

func freePort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestServeLoopback runs Serve in Proxy mode on lo with high ports: a
// malformed packet is reported and skipped, a port-4011 REQUEST (EDK2's,
// captured) is answered from port 4011 to the client's address and port,
// and Serve returns nil when its context ends.
func TestServeLoopback(t *testing.T) {
	if c, err := server4.NewIPv4UDPConn("lo", &net.UDPAddr{Port: freePort(t)}); err != nil {
		t.Skipf("SKIPPED: cannot bind a DHCP socket to lo (needs root or CAP_NET_RAW; CI runs as root): %v; Serve is NOT tested", err)
	} else {
		c.Close()
	}
	s := newServer(t, proxyConfig())
	s.dhcpPort, s.proxyPort = freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan Event, 100)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, "lo", func(e Event) { events <- e }) }()

	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	proxy := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: s.proxyPort}

	// Serve says nothing when it is ready: send junk until it reports one.
	deadline := time.Now().Add(10 * time.Second)
	for seen := false; !seen; {
		if time.Now().After(deadline) {
			t.Fatal("no event for a malformed packet within 10s")
		}
		if _, err := client.WriteToUDP([]byte("not dhcp"), proxy); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-events:
			if !strings.Contains(e.Detail, "malformed packet from 127.0.0.1") {
				t.Fatalf("event %q, want a malformed packet", e.Detail)
			}
			seen = true
		case <-time.After(100 * time.Millisecond):
		}
	}

	req := load(t, "edk2-request-4011.bin")
	req.ClientIPAddr = net.IPv4(127, 0, 0, 1)
	if _, err := client.WriteToUDP(req.ToBytes(), proxy); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, from, err := client.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no reply: %v", err)
		}
		rep, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			continue // an answer to the junk? there is none, but be lenient
		}
		if from.Port != s.proxyPort {
			t.Errorf("reply from port %d, want %d", from.Port, s.proxyPort)
		}
		if rep.MessageType() != dhcpv4.MessageTypeAck || rep.TransactionID != req.TransactionID || rep.BootFileName != "snponly.efi" {
			t.Errorf("reply %v xid %v file %q, want ACK %v snponly.efi", rep.MessageType(), rep.TransactionID, rep.BootFileName, req.TransactionID)
		}
		break
	}
	for acked := false; !acked; {
		select {
		case e := <-events:
			acked = strings.HasPrefix(e.Detail, "proxy ack: snponly.efi")
		case <-time.After(10 * time.Second):
			t.Fatal("no event for the ACK")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}
