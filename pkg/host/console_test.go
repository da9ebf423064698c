package host

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestOpenTerminalAndEcho(t *testing.T) {
	m, s, err := Linux{}.OpenPTY()
	if err != nil {
		t.Skipf("SKIP: no pseudo-terminals here (devpts): %v", err)
	}
	defer m.Close()
	defer s.Close()
	// Start from a raw-ish state to see OpenTerminal fix it.
	tio, _ := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	tio.Lflag &^= unix.ICANON | unix.ECHO
	unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, tio)

	term, err := Linux{}.OpenTerminal(s.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	lflag := func() uint32 {
		tio, err := unix.IoctlGetTermios(int(term.File().Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		return tio.Lflag
	}
	if l := lflag(); l&unix.ICANON == 0 || l&unix.ECHO == 0 {
		t.Errorf("after OpenTerminal lflag %#o lacks ICANON or ECHO", l)
	}
	if err := term.SetEcho(false); err != nil {
		t.Fatal(err)
	}
	if lflag()&unix.ECHO != 0 {
		t.Error("SetEcho(false) left ECHO on")
	}
	if err := term.SetEcho(true); err != nil {
		t.Fatal(err)
	}
	if lflag()&unix.ECHO == 0 {
		t.Error("SetEcho(true) left ECHO off")
	}
}
