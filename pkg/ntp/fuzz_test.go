package ntp

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// reply is a server's answer as newServer in ntp_test.go builds it.
func reply(li, version, mode, stratum byte, recv, xmit time.Time) []byte {
	b := make([]byte, 48)
	b[0] = li<<6 | version<<3 | mode
	b[1] = stratum
	copy(b[12:16], "GPS\x00")
	binary.BigEndian.PutUint64(b[16:24], toNTP(recv.Add(-time.Minute)))
	binary.BigEndian.PutUint64(b[32:40], toNTP(recv))
	binary.BigEndian.PutUint64(b[40:48], toNTP(xmit))
	return b
}

// FuzzParse: a UDP answer of 48 bytes or more (what query hands to parse,
// its originate timestamp already matched) is refused with an error or is
// a synchronised server's answer with a round trip that is not negative and
// not longer than the time we waited for it.
func FuzzParse(f *testing.F) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 250e6, time.UTC)
	for _, b := range [][]byte{
		reply(0, 4, 4, 2, now, now.Add(time.Millisecond)),
		reply(0, 3, 4, 1, now.Add(-time.Hour), now.Add(-time.Hour)),
		reply(0, 4, 4, 0, now, now),  // kiss-o'-death
		reply(3, 4, 4, 2, now, now),  // not synchronised
		reply(0, 4, 3, 2, now, now),  // a client's packet
		reply(0, 4, 4, 16, now, now), // stratum 16
		reply(0, 4, 4, 2, time.Date(2040, 1, 1, 0, 0, 0, 5e8, time.UTC), time.Date(2040, 1, 1, 0, 0, 1, 0, time.UTC)), // era 1
		append(reply(0, 4, 4, 2, now, now), make([]byte, 464)...),                                                     // with extension fields
		make([]byte, 48),
	} {
		// the local clock: a Pi without an RTC in 1970, or about right.
		f.Add(b, int64(0), int32(20000))
		f.Add(b, now.Unix(), int32(-5))
	}
	f.Fuzz(func(t *testing.T, b []byte, t1Unix int64, rttMicros int32) {
		if len(b) < 48 {
			return // query never hands parse a shorter answer
		}
		t1 := time.Unix(t1Unix%(1<<33), 0).UTC() // 1697–2242: any clock a board may have
		t4 := t1.Add(time.Duration(rttMicros) * time.Microsecond)
		r, err := parse(b, t1, t4, "192.0.2.1:123")
		if r.Addr != "192.0.2.1:123" {
			t.Fatalf("parse: Addr = %q", r.Addr)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "192.0.2.1:123: ") {
				t.Fatalf("parse: error %q does not name the server", err)
			}
			return
		}
		if r.Stratum < 1 || r.Stratum > 15 {
			t.Fatalf("parse accepted stratum %d", r.Stratum)
		}
		if b[0]&7 != 4 || b[0]>>6 == 3 {
			t.Fatalf("parse accepted mode %d, leap indicator %d", b[0]&7, b[0]>>6)
		}
		if r.RTT < 0 || r.RTT > max(t4.Sub(t1), 0) {
			t.Fatalf("parse: RTT %v, waited %v", r.RTT, t4.Sub(t1))
		}
		// The clock is set to t4+Offset: the server's transmit time plus
		// half the round trip.
		want := fromNTP(binary.BigEndian.Uint64(b[40:48])).Add(r.RTT / 2)
		if got := t4.Add(r.Offset); got.Sub(want).Abs() > time.Microsecond {
			t.Fatalf("parse: the clock would be set to %s, want %s", got, want)
		}
	})
}
