package bootloader

import (
	"os"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/host"
)

func TestGrubEnvRoundTrip(t *testing.T) {
	for _, env := range []UBootEnv{{Good: SlotA}, {Good: SlotA, Try: SlotB, Left: 3}, {Good: SlotB, Try: SlotA, Left: 0}} {
		b := env.RenderGrub()
		if len(b) != grubEnvSize {
			t.Errorf("RenderGrub(%+v) is %d bytes, want %d (save_env rewrites it in place)", env, len(b), grubEnvSize)
		}
		got, err := ParseGrubEnv(b)
		if err != nil || got != env {
			t.Errorf("ParseGrubEnv(RenderGrub(%+v)) = %+v, %v", env, got, err)
		}
	}
}

// testdata/grubenv-saved-by-grub is the block GRUB 2.06's save_env wrote
// on the third try of slot b (pkg/image/grubefi's QEMU test makes more).
func TestParseGrubEnvWrittenByGrub(t *testing.T) {
	b, err := os.ReadFile("testdata/grubenv-saved-by-grub")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseGrubEnv(b)
	if want := (UBootEnv{Good: SlotA, Try: SlotB, Left: 0}); err != nil || got != want {
		t.Errorf("ParseGrubEnv = %+v, %v; want %+v", got, err, want)
	}
}

func TestParseGrubEnvRefusals(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"no header", "keso_good=a\n", "header"},
		{"bad slot", grubEnvHeader + "keso_good=c\n###", "grubenv: keso_good"},
		{"bad count", grubEnvHeader + "keso_good=a\nkeso_try=b\nkeso_left=x\n###", "grubenv: keso_left"},
		{"count past the scripts' 9", grubEnvHeader + "keso_good=a\nkeso_try=b\nkeso_left=A\n###", "want 0 to 9 tries"},
	} {
		if _, err := ParseGrubEnv([]byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one naming %q", tc.name, err, tc.want)
		}
	}
}

func TestGrubCmdline(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"console=ttyAMA0,115200 panic=10 keso.slot=a", "set keso_options='console=ttyAMA0,115200 panic=10'\n"},
		{"a='b c' $x", `set keso_options='a='\''b c'\'' $x'` + "\n"},
		{"  keso.slot=b ", "# no command line of its own: grub.cfg's default applies\n"},
	} {
		if got := string(GrubCmdline(tc.in)); got != tc.want {
			t.Errorf("GrubCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestGrubConfig(t *testing.T) {
	cfg := GrubConfig("console=ttyAMA0 panic=10 keso.slot=a")
	for _, want := range []string{
		"load_env -f ${prefix}/grubenv keso_good keso_try keso_left\n",
		"if [ \"${keso_left}\" = 9 ]; then set keso_next=8; fi\n",
		"if [ \"${keso_left}\" = 1 ]; then set keso_next=0; fi\n",
		"if save_env -f ${prefix}/grubenv keso_good keso_try keso_left; then\n      set keso_boot=${keso_try}\n",
		"set keso_options='console=ttyAMA0 panic=10'\n",
		"source /keso/${keso_boot}/cmdline.cfg\n",
		"linux /keso/${keso_boot}/vmlinuz ${keso_options} keso.slot=${keso_boot}\n",
		"initrd /keso/${keso_boot}/initrd\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, "= 10 ]") || strings.Count(cfg, "set keso_next=") != MaxScriptTries+1 {
		t.Errorf("grub.cfg counts other than 1..%d tries:\n%s", MaxScriptTries, cfg)
	}
}

func TestGrubLiveConfig(t *testing.T) {
	cfg := GrubLiveConfig("/boot/vmlinuz", "/boot/initrd", " keso.live console=ttyAMA0,115200 panic=10 it's ")
	for _, want := range []string{
		"set keso_options='keso.live console=ttyAMA0,115200 panic=10 it'\\''s'\n",
		"echo \"keso: booting the live system\"\n",
		"linux /boot/vmlinuz ${keso_options}\n",
		"initrd /boot/initrd\nboot\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("live grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	for _, bad := range []string{"grubenv", "keso.slot", "save_env"} {
		if strings.Contains(cfg, bad) {
			t.Errorf("live grub.cfg has %q (a live medium has no slots and counts no tries):\n%s", bad, cfg)
		}
	}
}

// TestGrubArmCommit: GrubEnvFile arms a slot with its command line beside
// its kernel and commits it, as on U-Boot's boot.env.
func TestGrubArmCommit(t *testing.T) {
	esp := host.FS{Root: t.TempDir()}
	must(t, GrubEnvFile.Write(esp, UBootEnv{Good: SlotA}))
	env, err := GrubEnvFile.Arm(esp, ArmSpec{Slot: SlotB, Kernel: []byte("k"), Initrd: []byte("i"), Options: "console=ttyAMA0 keso.slot=a", Tries: 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := (UBootEnv{Good: SlotA, Try: SlotB, Left: 2}); env != want {
		t.Errorf("after arm: %+v, want %+v", env, want)
	}
	b, _ := esp.ReadFile(GrubEnvPath)
	if len(b) != grubEnvSize || !strings.HasPrefix(string(b), grubEnvHeader) {
		t.Errorf("grubenv on disk is %d bytes, header %v", len(b), strings.HasPrefix(string(b), grubEnvHeader))
	}
	if b, _ := esp.ReadFile(GrubCmdlinePath(SlotB)); string(b) != "set keso_options='console=ttyAMA0'\n" {
		t.Errorf("cmdline.cfg = %q", b)
	}
	if env, err = GrubEnvFile.Commit(esp, SlotB); err != nil || env != (UBootEnv{Good: SlotB}) {
		t.Errorf("after commit: %+v %v", env, err)
	}
}
