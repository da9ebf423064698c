package host

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A datagram server that answers like wpa_supplicant's control socket:
// to the sender's address, with an unsolicited event first.
func TestWPACtrlRequest(t *testing.T) {
	dir := t.TempDir()
	srv, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "wlan0"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 256)
		for {
			n, from, err := srv.ReadFromUnix(buf)
			if err != nil {
				return
			}
			srv.WriteToUnix([]byte("<3>CTRL-EVENT-SCAN-STARTED "), from)
			reply := "UNKNOWN COMMAND\n"
			if string(buf[:n]) == "STATUS" {
				reply = "ssid=store\nwpa_state=COMPLETED\n"
			}
			srv.WriteToUnix([]byte(reply), from)
		}
	}()
	local := t.TempDir()
	c := WPACtrl{Dir: dir, LocalDir: local}
	got, err := c.Request(context.Background(), "wlan0", "STATUS")
	if err != nil {
		t.Fatal(err)
	}
	if want := "ssid=store\nwpa_state=COMPLETED\n"; got != want {
		t.Errorf("reply = %q, want %q", got, want)
	}
	if ents, _ := os.ReadDir(local); len(ents) != 0 {
		t.Errorf("reply socket left behind: %v", ents)
	}
}

func TestWPACtrlNoSupplicant(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := WPACtrl{Dir: t.TempDir(), LocalDir: t.TempDir()}.Request(ctx, "wlan0", "STATUS")
	if err == nil || !strings.Contains(err.Error(), "wpa_supplicant control socket") {
		t.Errorf("err = %v, want one naming the control socket", err)
	}
}
