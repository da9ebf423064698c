package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/test/e2e/qemu"
)

// TestRPiAssessesUBootState boots the arm64 card's slot A in QEMU's
// raspi3b: the agent must find the card's boot partition by keso.mbr (MBR
// partition 1) and assess U-Boot's keso/boot.env as built (keso_good=a,
// no trial): slot a committed, which is what `keso status` then reports.
// QEMU's raspi3b runs no U-Boot, so the trial itself is covered by
// pkg/upgrade's tests (the script's decisions) and pkg/bootloader's
// U-Boot test (the script in u-boot-qemu). The console line is checked,
// not `keso status --json`: with Debian's DTB the PL011 QEMU has as its
// serial port is the Bluetooth UART, so no console shell answers there.
func TestRPiAssessesUBootState(t *testing.T) {
	skipUnlessE2E(t)
	needTools(t, "mtype", "mcopy")
	t.Parallel()
	a := artifacts(t, "arm64")
	r := prepareRPi(t, a, "a")
	vm := r.start(t, "rpi3b-assess")
	handoff(t, vm)
	if _, _, err := vm.Expect(regexp.MustCompile(`keso: upgrade: (slot .*|assess boot: .*)\r?\n`), 2*time.Minute); err != nil {
		t.Fatalf("the agent did not assess the boot: %v", err)
	}
	con := vm.Console()
	vm.Stop()
	if !strings.Contains(con, "keso: upgrade: slot a committed (U-Boot keso/boot.env)") {
		t.Errorf("the agent did not report slot a committed from U-Boot's boot.env; console tail:\n%s", qemu.Tail(con, 3000))
	}
	if strings.Contains(con, "KESO_EFI") {
		t.Errorf("the agent looked for the GPT ESP on the Pi card")
	}
}
