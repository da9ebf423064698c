package bootloader

import (
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/host"
)

// TestUBootArmCommit walks an upgrade on a boot partition as the SD card
// ships it (keso/boot.env: a good, no trial), booting through the model of
// the script (UBootEnv.Booting) in between.
func TestUBootArmCommit(t *testing.T) {
	esp := host.FS{Root: t.TempDir()}
	if env, err := UBootEnvFile.Read(esp); err != nil || env != (UBootEnv{Good: SlotA}) {
		t.Fatalf("no boot.env: %+v %v, want the script's default (a good)", env, err)
	}
	must(t, esp.WriteFileAtomic(UBootEnvPath, UBootEnv{Good: SlotA}.Render(), 0o644))

	if _, err := UBootEnvFile.Arm(esp, ArmSpec{Slot: SlotA, Kernel: []byte("k"), Initrd: []byte("i")}); err == nil || !strings.Contains(err.Error(), "good slot") {
		t.Errorf("arming the good slot: %v, want a refusal", err)
	}
	env, err := UBootEnvFile.Arm(esp, ArmSpec{Slot: SlotB, Kernel: []byte("kernel-v2"), Initrd: []byte("initrd-v2"), Tries: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := env, (UBootEnv{Good: SlotA, Try: SlotB, Left: 2}); got != want {
		t.Errorf("after arm: %+v, want %+v", got, want)
	}
	for p, want := range map[string]string{KernelPath(SlotB): "kernel-v2", InitrdPath(SlotB): "initrd-v2"} {
		if b, _ := esp.ReadFile(p); string(b) != want {
			t.Errorf("%s = %q, want %q", p, b, want)
		}
	}
	// the script takes a try (writes the file) and boots b
	slot, next := env.Booting()
	must(t, esp.WriteFileAtomic(UBootEnvPath, next.Render(), 0o644))
	if slot != SlotB {
		t.Fatalf("first boot after arm: %s, want b", slot)
	}
	if got, err := UBootEnvFile.Commit(esp, SlotA); err != nil || got != next {
		t.Errorf("committing the good slot a during b's trial: %+v %v, want no change (%+v)", got, err, next)
	}
	env, err = UBootEnvFile.Commit(esp, SlotB)
	if err != nil || env != (UBootEnv{Good: SlotB}) {
		t.Errorf("after commit: %+v %v, want b good, no trial", env, err)
	}
	if again, err := UBootEnvFile.Commit(esp, SlotB); err != nil || again != env {
		t.Errorf("second commit: %+v %v, want no change", again, err)
	}
	if got, _ := UBootEnvFile.Read(esp); got != env {
		t.Errorf("boot.env on disk = %+v, want %+v", got, env)
	}
}

// TestUBootFallbackAfterTries: an armed slot that never commits boots
// Tries times, then the good slot, and re-arming it withdraws the old
// trial before the kernel is replaced.
func TestUBootFallbackAfterTries(t *testing.T) {
	esp := host.FS{Root: t.TempDir()}
	env, err := UBootEnvFile.Arm(esp, ArmSpec{Slot: SlotB, Kernel: []byte("k"), Initrd: []byte("i"), Tries: 3})
	if err != nil {
		t.Fatal(err)
	}
	var boots []Slot
	for i := 0; i < 5; i++ {
		var s Slot
		s, env = env.Booting()
		boots = append(boots, s)
	}
	if got := fmtSlots(boots); got != "b b b a a" {
		t.Errorf("boots %v, want b b b a a", boots)
	}
	must(t, esp.WriteFileAtomic(UBootEnvPath, env.Render(), 0o644))
	if env, err = UBootEnvFile.Arm(esp, ArmSpec{Slot: SlotB, Kernel: []byte("k2"), Initrd: []byte("i2")}); err != nil || env.Left != DefaultTries {
		t.Errorf("re-arm: %+v %v, want %d fresh tries", env, err, DefaultTries)
	}
}

func fmtSlots(s []Slot) string {
	var out []string
	for _, x := range s {
		out = append(out, string(x))
	}
	return strings.Join(out, " ")
}

func TestUBootCommitNotOnTrial(t *testing.T) {
	esp := host.FS{Root: t.TempDir()}
	must(t, esp.WriteFileAtomic(UBootEnvPath, UBootEnv{Good: SlotA}.Render(), 0o644))
	if _, err := UBootEnvFile.Commit(esp, SlotB); err == nil || !strings.Contains(err.Error(), "not on trial") {
		t.Errorf("committing b with no trial: %v, want an error", err)
	}
}
