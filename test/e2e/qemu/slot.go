package qemu

import (
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// SlotFiles are the machine-wide VM slots: at most two VMs at once on the
// machine, whoever starts them.
var SlotFiles = []string{"/tmp/keso-qemu-slot.0", "/tmp/keso-qemu-slot.1"}

// SlotWait bounds how long Start waits for a free slot.
var SlotWait = 30 * time.Minute

// acquireSlot blocks until one of the slot files is locked by us.
func acquireSlot(t testing.TB) *os.File {
	t.Helper()
	deadline := time.Now().Add(SlotWait)
	logged := false
	for {
		for _, p := range SlotFiles {
			f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o666)
			if err != nil {
				t.Fatalf("qemu: open slot %s: %v", p, err)
			}
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
				fmt.Fprintf(f, "%d\n", os.Getpid())
				return f
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("qemu: no free VM slot (%v) within %s", SlotFiles, SlotWait)
		}
		if !logged {
			t.Logf("qemu: both VM slots are busy; waiting")
			logged = true
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func releaseSlot(f *os.File) {
	if f != nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}
}

// TakeSlot takes one of the machine-wide VM slots for a VM that a test
// starts without Start (its own QEMU command line), and returns the
// function that gives it back.
func TakeSlot(t testing.TB) (release func()) {
	f := acquireSlot(t)
	return func() { releaseSlot(f) }
}
