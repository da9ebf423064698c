package bootloader

import (
	"bytes"
	"fmt"
	"strings"
)

// GRUB flavour of A/B with boot counting, for armv7 under UEFI, where
// systemd-boot's own counting is broken (Debian's 252 systemd-bootarm.efi
// renames slot-a+3.conf to "slot-a+0-2(null)" on the first try). GRUB for
// arm-efi (Debian's grub-efi-arm-bin) runs grub/grub.cfg on the ESP, which
// keeps the same three variables as the U-Boot script (UBootEnv: keso_good,
// keso_try, keso_left) in GRUB's environment block grub/grubenv, read with
// load_env and written in place with save_env. The semantics are the
// U-Boot script's: a trial with tries left loses one before its kernel is
// started, so a kernel that panics, hangs (watchdog) or never reaches the
// agent uses up its tries, and then keso_good boots. If save_env cannot
// count the try, the script boots keso_good instead of an uncounted trial.
//
// Each slot's kernel command line lives beside its kernel, in
// keso/<slot>/cmdline.cfg (a GRUB script setting keso_options), so an
// upgrade brings its release's own command line, as on systemd-boot.

// GrubEnvPath is GRUB's environment block on the ESP.
const GrubEnvPath = "/grub/grubenv"

// GrubConfigPath is the configuration the GRUB image loads ($prefix/grub.cfg).
const GrubConfigPath = "/grub/grub.cfg"

// grubEnvSize is the size of a GRUB environment block; save_env rewrites
// the file in place and never grows it.
const grubEnvSize = 1024

const grubEnvHeader = "# GRUB Environment Block\n"

// GrubCmdlinePath is the file that holds a slot's kernel command line.
func GrubCmdlinePath(s Slot) string { return fmt.Sprintf("/keso/%s/cmdline.cfg", s) }

// RenderGrub writes the env as a GRUB environment block: the header,
// key=value lines (keys sorted), '#' padding to 1024 bytes.
func (e UBootEnv) RenderGrub() []byte {
	var b bytes.Buffer
	b.WriteString(grubEnvHeader)
	b.Write(e.Render())
	for b.Len() < grubEnvSize {
		b.WriteByte('#')
	}
	return b.Bytes()
}

// ParseGrubEnv reads a GRUB environment block (what RenderGrub and GRUB's
// save_env write). A block without the header is refused: GRUB would
// refuse it too, and fall back to its defaults.
func ParseGrubEnv(data []byte) (UBootEnv, error) {
	if !bytes.HasPrefix(data, []byte(grubEnvHeader)) {
		return UBootEnv{}, fmt.Errorf("grubenv: no %q header", strings.TrimSpace(grubEnvHeader))
	}
	var lines []string
	for _, line := range strings.Split(string(data[len(grubEnvHeader):]), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		lines = append(lines, line)
	}
	return parseEnvLines([]byte(strings.Join(lines, "\n")), "grubenv")
}

// GrubCmdline is keso/<slot>/cmdline.cfg: a GRUB script that sets
// keso_options to the slot's kernel command line (without keso.slot, which
// grub.cfg adds). Single quotes keep GRUB from expanding anything in it.
//
// With no options the file sets nothing, and grub.cfg's default (the
// command line the disk was built with) applies.
func GrubCmdline(options string) []byte {
	opts := strings.TrimSpace(StripSlotOption(options))
	if opts == "" {
		return []byte("# no command line of its own: grub.cfg's default applies\n")
	}
	return []byte("set keso_options=" + grubQuote(opts) + "\n")
}

// grubQuote single-quotes s for a GRUB script: nothing in it is expanded.
func grubQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// StripSlotOption is a kernel command line without its keso.slot=.
func StripSlotOption(options string) string {
	var keep []string
	for _, f := range strings.Fields(options) {
		if !strings.HasPrefix(f, "keso.slot=") {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// GrubConfig returns grub/grub.cfg. options is the command line used when
// a slot has no cmdline.cfg (the image's own, from the build).
func GrubConfig(options string) string {
	var count strings.Builder
	for n := MaxScriptTries; n >= 1; n-- {
		fmt.Fprintf(&count, "  if [ \"${keso_left}\" = %d ]; then set keso_next=%d; fi\n", n, n-1)
	}
	def := strings.TrimSpace(StripSlotOption(options))
	return fmt.Sprintf(`# keso A/B boot with a try counter in grub/grubenv (pkg/bootloader).
set timeout=0
set keso_good=a
set keso_try=
set keso_left=0
if [ -f ${prefix}/grubenv ]; then
  load_env -f ${prefix}/grubenv keso_good keso_try keso_left
fi
if [ "${keso_good}" != b ]; then set keso_good=a; fi
set keso_boot=${keso_good}
if [ "${keso_try}" = a -o "${keso_try}" = b ]; then
  set keso_next=
%s  if [ -n "${keso_next}" ]; then
    set keso_left=${keso_next}
    if save_env -f ${prefix}/grubenv keso_good keso_try keso_left; then
      set keso_boot=${keso_try}
    else
      echo "keso: cannot count a try in grubenv; booting the good slot ${keso_good}"
    fi
  fi
fi
echo "keso: booting slot ${keso_boot} (good ${keso_good}, trial ${keso_try}, tries left ${keso_left})"
set keso_options=%s
if [ -f /keso/${keso_boot}/cmdline.cfg ]; then
  source /keso/${keso_boot}/cmdline.cfg
fi
linux /keso/${keso_boot}/vmlinuz ${keso_options} keso.slot=${keso_boot}
initrd /keso/${keso_boot}/initrd
boot
echo "keso: slot ${keso_boot} did not start; restarting"
sleep 5
reboot
`, count.String(), grubQuote(def))
}

// MaxScriptTries is the most tries a boot script's counter holds (U-Boot:
// one hex digit read back as decimal; GRUB: one comparison per value).
const MaxScriptTries = 9

// GrubLiveLine is what GrubLiveConfig prints before it loads the live
// system's kernel.
const GrubLiveLine = "keso: booting the live system"

// GrubLiveConfig returns grub/grub.cfg of a live medium (on the ISO's
// ISO 9660 file system): no slots and no counter, just the kernel and
// initrd at the given paths on the medium, with options (keso.live and
// the image's command line).
func GrubLiveConfig(kernel, initrd, options string) string {
	return fmt.Sprintf(`# keso live boot (pkg/bootloader): the live system, no slots, no try counter.
set timeout=0
set keso_options=%s
echo %q
linux %s ${keso_options}
initrd %s
boot
echo "keso: the live system did not start; restarting"
sleep 5
reboot
`, grubQuote(strings.TrimSpace(options)), GrubLiveLine, kernel, initrd)
}
