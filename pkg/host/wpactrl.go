package host

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// WPACtrl talks to wpa_supplicant's control interface: a datagram Unix
// socket per interface in Dir (ctrl_interface=Dir). Each request binds its
// own reply socket in LocalDir (wpa_supplicant answers to the sender's
// address), sends one command and reads one reply.
type WPACtrl struct {
	Dir      string // e.g. /run/wpa_supplicant
	LocalDir string // e.g. /run/keso
}

var wpaSeq atomic.Uint64

// Request sends cmd ("STATUS", "PING", …) to iface's socket and returns
// the reply. It gives up when ctx ends or after 3 s.
func (c WPACtrl) Request(ctx context.Context, iface, cmd string) (string, error) {
	remote := filepath.Join(c.Dir, iface)
	local := filepath.Join(c.LocalDir, fmt.Sprintf("wpa_ctrl_%d_%d", os.Getpid(), wpaSeq.Add(1)))
	os.Remove(local)
	conn, err := net.DialUnix("unixgram", &net.UnixAddr{Name: local, Net: "unixgram"}, &net.UnixAddr{Name: remote, Net: "unixgram"})
	if err != nil {
		return "", fmt.Errorf("wpa_supplicant control socket %s: %w", remote, err)
	}
	defer os.Remove(local)
	defer conn.Close()
	deadline := time.Now().Add(3 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return "", fmt.Errorf("wpa_supplicant control socket %s: send %s: %w", remote, cmd, err)
	}
	buf := make([]byte, 8192)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return "", fmt.Errorf("wpa_supplicant control socket %s: %s: %w", remote, cmd, err)
		}
		// Unsolicited events ("<3>CTRL-EVENT-…") reach attached monitors
		// only, but skip them should one arrive.
		if n > 0 && buf[0] == '<' {
			continue
		}
		return string(buf[:n]), nil
	}
}
