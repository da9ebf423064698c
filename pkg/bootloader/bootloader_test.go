package bootloader

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/keso-os/keso/pkg/host"
)

func newESP(t *testing.T) host.FS {
	t.Helper()
	esp := host.FS{Root: t.TempDir()}
	must(t, esp.WriteFileAtomic("/loader/loader.conf", []byte(LoaderConf), 0o644))
	must(t, esp.WriteFileAtomic(KernelPath(SlotA), []byte("kernel-v1"), 0o644))
	must(t, esp.WriteFileAtomic(InitrdPath(SlotA), []byte("initrd-v1"), 0o644))
	must(t, esp.WriteFileAtomic(EntriesDir+"/slot-a.conf", Render(EntrySpec{Slot: SlotA, Version: 1, Options: "console=ttyS0"}), 0o644))
	return esp
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		name       string
		slot       Slot
		counting   bool
		left, done int
		ok         bool
	}{
		{"slot-a.conf", SlotA, false, 0, 0, true},
		{"slot-b+3.conf", SlotB, true, 3, 0, true},
		{"slot-b+2-1.conf", SlotB, true, 2, 1, true},
		{"slot-b+0-3.conf", SlotB, true, 0, 3, true},
		{".slot-b.conf.new", "", false, 0, 0, false},
		{"slot-c.conf", "", false, 0, 0, false},
		{"other.conf", "", false, 0, 0, false},
	}
	for _, tt := range tests {
		slot, counting, left, done, ok := ParseName(tt.name)
		if slot != tt.slot || counting != tt.counting || left != tt.left || done != tt.done || ok != tt.ok {
			t.Errorf("ParseName(%q) = %q %v %d %d %v, want %q %v %d %d %v", tt.name, slot, counting, left, done, ok, tt.slot, tt.counting, tt.left, tt.done, tt.ok)
		}
		if ok {
			if got := FileName(slot, counting, left, done); got != tt.name {
				t.Errorf("FileName round trip = %q, want %q", got, tt.name)
			}
		}
	}
}

func TestRender(t *testing.T) {
	got := string(Render(EntrySpec{Slot: SlotB, Version: 7, Options: "console=ttyS0 panic=10"}))
	want := "title keso (slot B)\nsort-key keso\nversion 7\nlinux /keso/b/vmlinuz\ninitrd /keso/b/initrd\noptions console=ttyS0 panic=10 keso.slot=b\n"
	if got != want {
		t.Errorf("Render =\n%s\nwant\n%s", got, want)
	}
}

func bootSlot(t *testing.T, esp ESP) Slot {
	t.Helper()
	e, err := Boot(esp)
	if err != nil {
		t.Fatal(err)
	}
	return e.Slot
}

func armB(t *testing.T, esp ESP) {
	t.Helper()
	if _, err := Arm(esp, ArmSpec{Slot: SlotB, Kernel: []byte("kernel-v2"), Initrd: []byte("initrd-v2"), Options: "console=ttyS0"}); err != nil {
		t.Fatal(err)
	}
}

func TestTrialCommitted(t *testing.T) {
	esp := newESP(t)
	armB(t, esp)
	if got, want := bootSlot(t, esp), SlotB; got != want {
		t.Fatalf("first boot after arm = %s, want %s", got, want)
	}
	must(t, Commit(esp, SlotB))
	for i := 0; i < 5; i++ {
		if got, want := bootSlot(t, esp), SlotB; got != want {
			t.Fatalf("boot %d after commit = %s, want %s", i, got, want)
		}
	}
}

func TestTrialFailsBackToOldSlot(t *testing.T) {
	esp := newESP(t)
	armB(t, esp)
	var got []Slot
	for i := 0; i < 5; i++ {
		got = append(got, bootSlot(t, esp)) // never committed: each try fails
	}
	want := []Slot{SlotB, SlotB, SlotB, SlotA, SlotA}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("boots = %v, want %v", got, want)
	}
}

func TestPreferRollsBack(t *testing.T) {
	esp := newESP(t)
	armB(t, esp)
	bootSlot(t, esp)
	must(t, Commit(esp, SlotB))
	must(t, Prefer(esp, SlotA))
	if got, want := bootSlot(t, esp), SlotA; got != want {
		t.Errorf("after Prefer(a) boots %s, want %s", got, want)
	}
	if err := Prefer(esp, SlotA); err != nil {
		t.Errorf("Prefer of the current choice: %v", err)
	}
}

func TestArmRefusesWithoutOtherEntry(t *testing.T) {
	esp := host.FS{Root: t.TempDir()}
	must(t, esp.MkdirAll(EntriesDir, 0o755))
	if _, err := Arm(esp, ArmSpec{Slot: SlotB}); err == nil {
		t.Errorf("Arm with no slot-a entry succeeded; want a refusal")
	}
}

// cutESP fails every write-like operation after budget of them: a power
// cut in the middle of Arm.
type cutESP struct {
	host.FS
	budget int
}

var errCut = errors.New("power cut")

func (c *cutESP) spend() error {
	if c.budget <= 0 {
		return errCut
	}
	c.budget--
	return nil
}

func (c *cutESP) WriteFileAtomic(p string, data []byte, mode fs.FileMode) error {
	if err := c.spend(); err != nil {
		return err
	}
	return c.FS.WriteFileAtomic(p, data, mode)
}

func (c *cutESP) Rename(o, n string) error {
	if err := c.spend(); err != nil {
		return err
	}
	return c.FS.Rename(o, n)
}

func (c *cutESP) Remove(p string) error {
	if err := c.spend(); err != nil {
		return err
	}
	return c.FS.Remove(p)
}

// TestArmPowerCut: whatever step of Arm a power cut interrupts, the entry
// that boots next points at a complete kernel and initrd of one version.
func TestArmPowerCut(t *testing.T) {
	for budget := 0; budget <= 6; budget++ {
		t.Run(fmt.Sprintf("after-%d-steps", budget), func(t *testing.T) {
			base := newESP(t)
			// A previous committed slot B, so Arm has an old entry to remove.
			armB(t, base)
			bootSlot(t, base)
			must(t, Commit(base, SlotB))
			must(t, Prefer(base, SlotA))
			esp := &cutESP{FS: base, budget: budget}
			_, err := Arm(esp, ArmSpec{Slot: SlotB, Kernel: []byte("kernel-v3"), Initrd: []byte("initrd-v3")})
			if budget < 5 && !errors.Is(err, errCut) {
				t.Fatalf("Arm with budget %d: err = %v, want the cut", budget, err)
			}
			e, err := Boot(base)
			if err != nil {
				t.Fatalf("no bootable entry after a cut at step %d: %v", budget, err)
			}
			k, err1 := base.ReadFile(e.Linux)
			i, err2 := base.ReadFile(e.Initrd)
			if err1 != nil || err2 != nil {
				t.Fatalf("entry %s points at missing files: %v %v", e.File, err1, err2)
			}
			kv, iv := bytes.TrimPrefix(k, []byte("kernel-")), bytes.TrimPrefix(i, []byte("initrd-"))
			if !bytes.Equal(kv, iv) {
				t.Errorf("entry %s boots kernel %s with initrd %s", e.File, k, i)
			}
		})
	}
}
