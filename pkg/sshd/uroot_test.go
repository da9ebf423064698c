package sshd

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keso-os/keso/internal/testutil"
	"github.com/keso-os/keso/pkg/fetch"
)

// TestURootShell logs in to a user whose shell is keso's real userland:
// u-root's multi-call binary with /bin/sh → gosh, laid out as the image
// builder lays it out. It uses the binary the image builder cached
// (pkg/image/gobuild.Busybox) and skips loudly when there is none.
func TestURootShell(t *testing.T) {
	matches, _ := filepath.Glob(filepath.Join(fetch.DefaultDir(), "u-root", "bb-*-"+runtime.GOARCH+"-*"))
	var bb string
	for _, m := range matches {
		if !strings.HasSuffix(m, ".tmp") {
			bb = m
		}
	}
	if bb == "" {
		t.Skipf("SKIPPED: no cached u-root multi-call binary for %s under %s/u-root (the image builder tests build it); the u-root shell is not exercised", runtime.GOARCH, fetch.DefaultDir())
	}
	bin := filepath.Join(t.TempDir(), "bin")
	os.MkdirAll(bin, 0o755)
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "u-root"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"gosh", "echo", "stty", "tty"} {
		os.Symlink("u-root", filepath.Join(bin, c))
	}
	os.Symlink("gosh", filepath.Join(bin, "sh"))
	shell := filepath.Join(bin, "sh")

	e := startServer(t, envOpts{rancherID: -1})
	passwd := fmt.Sprintf("rancher:x:%d:%d:rancher:/home/rancher:%s\n", os.Getuid(), os.Getgid(), shell)
	e.srv.FS.WriteFileAtomic("/etc/passwd", []byte(passwd), 0o644)

	for _, tc := range []struct {
		cmd    string
		out    string
		status int
	}{
		{"echo hi", "hi\n", 0},
		{"exit 3", "", 3},
	} {
		out, errs, code := e.ssh(e.keyFile, "rancher", nil, tc.cmd)
		if out != tc.out || code != tc.status {
			t.Errorf("gosh: ssh %q: got %q (stderr %q) status %d, want %q status %d", tc.cmd, out, errs, code, tc.out, tc.status)
		}
	}

	// An interactive gosh on a pty.
	c, err := e.dial("rancher", ssh.PublicKeys(e.signer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestPty("xterm", 30, 90, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	in, _ := s.StdinPipe()
	var out testutil.LockedBuffer
	s.Stdout = &out
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	// gosh's line editor asks the terminal for its colours (OSC 10/11) and
	// the cursor position (CSI 6n) before each prompt and waits for the
	// answers, as a real terminal behind the ssh client gives them.
	var inMu sync.Mutex
	send := func(s string) {
		inMu.Lock()
		defer inMu.Unlock()
		fmt.Fprint(in, s)
	}
	stop := make(chan struct{})
	defer close(stop)
	prompts := make(chan int, 100)
	go func() {
		answered := 0
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			for n := strings.Count(out.String(), "\x1b[6n"); answered < n; answered++ {
				send("\x1b]10;rgb:ffff/ffff/ffff\x1b\\\x1b[1;1R")
				prompts <- answered + 1
			}
		}
	}()
	recvPrompt := func() {
		t.Helper()
		select {
		case <-prompts:
		case <-time.After(20 * time.Second):
			t.Fatalf("interactive gosh: no terminal query; output %q", out.String())
		}
	}
	recvPrompt()
	recvPrompt()
	send("echo marker-$((6*7))\r")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "marker-42") {
		if time.Now().After(deadline) {
			t.Fatalf("interactive gosh: output %q, want marker-42", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// gosh stays open after `exit N` at its prompt (it prints the status);
	// Ctrl-D on an empty line ends it.
	time.Sleep(300 * time.Millisecond)
	send("\x04")
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()
	select {
	case err = <-waited:
	case <-time.After(20 * time.Second):
		t.Fatalf("interactive gosh did not exit after Ctrl-D; output %q", out.String())
	}
	if err != nil {
		t.Errorf("interactive gosh exit: %v, want status 0 (output %q)", err, out.String())
	}
}
