package netconf

import (
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/ntp"
	"github.com/keso-os/keso/pkg/phase"
)

// testClock: pkg/ntp steps the real clock through host.Linux.SetClock from
// an SNTP server (on 127.0.0.1) that is one hour ahead, then puts it back.
func testClock(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const ahead = time.Hour
	go func() {
		buf := make([]byte, 512)
		for {
			n, peer, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if n < 48 {
				continue
			}
			now := time.Now().Add(ahead)
			resp := make([]byte, 48)
			resp[0] = 4<<3 | 4
			resp[1] = 1
			copy(resp[24:32], buf[40:48])
			ts := uint64(now.Unix()+2208988800)<<32 | (uint64(now.Nanosecond())<<32)/1e9
			binary.BigEndian.PutUint64(resp[32:40], ts)
			binary.BigEndian.PutUint64(resp[40:48], ts)
			_, _ = c.WriteToUDP(resp, peer)
		}
	}()
	before := time.Now().Round(0) // wall clock only
	rec := phase.NewRecorder("ntp", nil, nil)
	r, err := ntp.Sync(context.Background(), []string{c.LocalAddr().String()}, ntp.Client{}, host.Linux{}, rec)
	if err != nil {
		t.Fatal(err)
	}
	stepped := time.Now().Round(0).Sub(before)
	defer func() {
		if err := (host.Linux{}).SetClock(time.Now().Add(-ahead)); err != nil {
			t.Errorf("restore the clock: %v", err)
		}
	}()
	t.Logf("offset %s, wall clock moved by %s", r.Offset, stepped)
	if stepped < ahead-2*time.Second || stepped > ahead+2*time.Second {
		t.Errorf("the wall clock moved by %s, want about %s", stepped, ahead)
	}
}
