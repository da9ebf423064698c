package bootloader

import (
	"os"
	"path/filepath"
	"testing"
)

// checkEnv: a parsed counter env names slots a or b, and renders (in both
// forms) to a file that parses back to the same env.
func checkEnv(t *testing.T, e UBootEnv) {
	t.Helper()
	if !e.Good.Valid() || (e.Try != "" && !e.Try.Valid()) {
		t.Fatalf("env %+v: keso_good or keso_try is not a slot", e)
	}
	if e.Left < 0 {
		t.Fatalf("env %+v: negative tries left", e)
	}
	if got, err := ParseUBootEnv(e.Render()); err != nil || got != e {
		t.Fatalf("ParseUBootEnv(Render(%+v)) = %+v, %v\n%s", e, got, err, e.Render())
	}
	grub := e.RenderGrub()
	if len(grub) != grubEnvSize {
		t.Fatalf("RenderGrub(%+v) is %d bytes, want %d", e, len(grub), grubEnvSize)
	}
	if got, err := ParseGrubEnv(grub); err != nil || got != e {
		t.Fatalf("ParseGrubEnv(RenderGrub(%+v)) = %+v, %v", e, got, err)
	}
}

// FuzzParseUBootEnv: keso/boot.env on the Raspberry Pi's boot partition
// (written by U-Boot's `env export -t`) is refused with an error or gives
// an env that round-trips through Render and RenderGrub.
func FuzzParseUBootEnv(f *testing.F) {
	for _, e := range []UBootEnv{{Good: SlotA}, {Good: SlotB, Try: SlotA, Left: 2}, {Good: SlotA, Try: SlotB, Left: 3}} {
		f.Add(e.Render())
	}
	for _, s := range []string{
		"keso_good=a\nkeso_left=0x2\nkeso_try=b\n\x00\x00garbage", "keso_good=c\n", "keso_left=x\n",
		"keso_good=b\r\nkeso_try=\r\n", " keso_try = b \n", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseUBootEnv(data)
		if err != nil {
			return
		}
		checkEnv(t, e)
	})
}

// FuzzParseGrubEnv: grub/grubenv on the armv7 ESP (written by GRUB's
// save_env) is refused with an error or gives an env that round-trips.
func FuzzParseGrubEnv(f *testing.F) {
	saved, err := os.ReadFile(filepath.Join("testdata", "grubenv-saved-by-grub"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(saved)
	for _, e := range []UBootEnv{{Good: SlotA}, {Good: SlotB, Try: SlotA, Left: 2}} {
		f.Add(e.RenderGrub())
	}
	for _, s := range []string{
		"keso_good=a\n", grubEnvHeader + "keso_good=c\n###", grubEnvHeader + "keso_good=a\nkeso_try=b\nkeso_left=x\n###",
		grubEnvHeader + "#keso_good=b\nkeso_left=9\nkeso_try=b", grubEnvHeader,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseGrubEnv(data)
		if err != nil {
			return
		}
		checkEnv(t, e)
	})
}

// FuzzParseName: a systemd-boot entry file name on the ESP is a keso slot
// entry or not; one that is names slot a or b with counters that are not
// negative, and FileName writes a name that parses to the same.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"slot-a.conf", "slot-b+3.conf", "slot-b+2-1.conf", "slot-b+0-3.conf", ".slot-b.conf.new", "slot-c.conf",
		"other.conf", "slot-a+3-0.conf", "slot-a+99999999999999999999.conf", "slot-a+-1.conf",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		slot, counting, left, done, ok := ParseName(name)
		if !ok {
			if slot != "" || counting || left != 0 || done != 0 {
				t.Fatalf("ParseName(%q) = %q %v %d %d, false", name, slot, counting, left, done)
			}
			return
		}
		if !slot.Valid() || left < 0 || done < 0 || (!counting && (left != 0 || done != 0)) {
			t.Fatalf("ParseName(%q) = %q %v %d %d", name, slot, counting, left, done)
		}
		again := FileName(slot, counting, left, done)
		s2, c2, l2, d2, ok2 := ParseName(again)
		if !ok2 || s2 != slot || c2 != counting || l2 != left || d2 != done {
			t.Fatalf("ParseName(%q) = %q %v %d %d; FileName gives %q, which parses to %q %v %d %d %v",
				name, slot, counting, left, done, again, s2, c2, l2, d2, ok2)
		}
	})
}
