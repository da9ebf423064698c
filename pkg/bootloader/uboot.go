package bootloader

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"
	"strconv"
	"strings"
)

// U-Boot flavour of A/B with boot counting, for boards whose firmware has
// no counting of its own (Raspberry Pi with Debian's kernel, armv7): a boot
// script keeps the counter in a small text file on the FAT boot partition,
// keso/boot.env, read with `env import -t` and written with `fatwrite`.
//
//	keso_good=a      the committed slot
//	keso_try=b       a slot on trial ("" when none)
//	keso_left=3      boots the trial has left
//
// On every boot the script takes one try from a trial with tries left and
// boots it; otherwise it boots keso_good. The agent commits a healthy trial
// by writing keso_good=b, keso_try= (Commit on UBootEnv). The file is
// smaller than one FAT sector and rewritten whole; if a power cut ever left
// it unreadable, the script's defaults (keso_good=a, no trial) boot slot A,
// which always holds a complete version, so the box still boots.

// UBootEnvPath is the counter file on the boot partition.
const UBootEnvPath = "/keso/boot.env"

// UBootEnv is the content of keso/boot.env, and of GRUB's grub/grubenv
// (grub.go), whose script keeps the same three variables.
type UBootEnv struct {
	Good Slot
	Try  Slot // "" when no trial
	Left int
}

// ParseUBootEnv reads keso/boot.env (`key=value` lines, as `env export -t`
// writes them; a NUL ends the text).
func ParseUBootEnv(data []byte) (UBootEnv, error) {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	return parseEnvLines(data, "boot.env")
}

// parseEnvLines reads the key=value lines of a counter env file named name.
func parseEnvLines(data []byte, name string) (UBootEnv, error) {
	e := UBootEnv{Good: SlotA}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "keso_good":
			e.Good = Slot(v)
		case "keso_try":
			e.Try = Slot(v)
		case "keso_left":
			n, err := strconv.ParseInt(strings.TrimPrefix(v, "0x"), 16, 32) // setexpr writes hex
			if err != nil {
				return e, fmt.Errorf("%s: keso_left=%q is not a number", name, v)
			}
			// Render writes decimal: the two agree only on one digit,
			// which is all the boot scripts count (MaxScriptTries).
			if n < 0 || n > MaxScriptTries {
				return e, fmt.Errorf("%s: keso_left=%q: want 0 to %d tries", name, v, MaxScriptTries)
			}
			e.Left = int(n)
		}
	}
	if !e.Good.Valid() {
		return e, fmt.Errorf("%s: keso_good=%q is not a or b", name, e.Good)
	}
	if e.Try != "" && !e.Try.Valid() {
		return e, fmt.Errorf("%s: keso_try=%q is not a or b", name, e.Try)
	}
	return e, nil
}

// Render writes the env in `env import -t` form, keys sorted.
func (e UBootEnv) Render() []byte {
	kv := map[string]string{"keso_good": string(e.Good), "keso_try": string(e.Try), "keso_left": strconv.Itoa(e.Left)}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, kv[k])
	}
	return b.Bytes()
}

// Booting is the slot the script boots next, and the env after that boot
// (a model of the script, for tests and for `keso status`).
func (e UBootEnv) Booting() (Slot, UBootEnv) {
	if e.Try != "" && e.Left > 0 {
		e.Left--
		return e.Try, e
	}
	return e.Good, e
}

// Arm puts slot on trial for tries boots.
func (e UBootEnv) Arm(slot Slot, tries int) UBootEnv {
	if tries <= 0 {
		tries = DefaultTries
	}
	e.Try, e.Left = slot, tries
	return e
}

// Commit makes the trial slot the good one.
func (e UBootEnv) Commit(slot Slot) UBootEnv {
	if e.Try == slot {
		e.Good, e.Try, e.Left = slot, "", 0
	}
	return e
}

// UBootScriptSpec says how the script loads and starts a kernel.
type UBootScriptSpec struct {
	// Boot is "booti" (arm64 Image) or "bootz" (armv7 zImage).
	Boot string
	// Options is the kernel command line without keso.slot.
	Options string
	// FDT, when set, is loaded from the boot partition (e.g. the Pi's
	// DTB); otherwise the firmware's ${fdtcontroladdr} is passed.
	FDT string
}

// UBootScript returns the hush source of boot.scr. It expects the
// variables distro boot sets (devtype, devnum, distro_bootpart,
// kernel_addr_r, ramdisk_addr_r, fdt_addr_r, scriptaddr).
func UBootScript(s UBootScriptSpec) string {
	fdt := "${fdtcontroladdr}"
	loadFDT := ""
	if s.FDT != "" {
		fdt = "${fdt_addr_r}"
		loadFDT = fmt.Sprintf("load ${devtype} ${devnum}:${distro_bootpart} ${fdt_addr_r} %s\n", s.FDT)
	}
	return fmt.Sprintf(`# keso A/B boot with a try counter in keso/boot.env (pkg/bootloader).
setenv keso_good a
setenv keso_try
setenv keso_left 0
if load ${devtype} ${devnum}:${distro_bootpart} ${scriptaddr} keso/boot.env; then
  env import -t ${scriptaddr} ${filesize}
fi
if test -n "${keso_try}" && test "${keso_left}" -gt 0; then
  setexpr keso_left ${keso_left} - 1
  setenv keso_boot ${keso_try}
  env export -t ${scriptaddr} keso_good keso_left keso_try
  fatwrite ${devtype} ${devnum}:${distro_bootpart} ${scriptaddr} keso/boot.env ${filesize}
else
  setenv keso_boot ${keso_good}
fi
echo "keso: booting slot ${keso_boot} (good ${keso_good}, trial ${keso_try}, tries left ${keso_left})"
%sload ${devtype} ${devnum}:${distro_bootpart} ${kernel_addr_r} keso/${keso_boot}/vmlinuz
load ${devtype} ${devnum}:${distro_bootpart} ${ramdisk_addr_r} keso/${keso_boot}/initrd
setenv bootargs "%s keso.slot=${keso_boot}"
%s ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} %s
echo "keso: slot ${keso_boot} did not start; resetting"
reset
`, loadFDT, s.Options, s.Boot, fdt)
}

// UImageScript wraps a hush script in U-Boot's legacy image header (type
// script, no compression), the form `source` expects in boot.scr; this is
// what `mkimage -A arm -T script -C none -d boot.cmd boot.scr` writes.
func UImageScript(script string, epoch int64) []byte {
	// Script payload: a table of image sizes (one, then a 0 terminator),
	// then the script.
	body := []byte(script)
	var payload bytes.Buffer
	binary.Write(&payload, binary.BigEndian, uint32(len(body)))
	binary.Write(&payload, binary.BigEndian, uint32(0))
	payload.Write(body)
	data := payload.Bytes()

	hdr := make([]byte, 64)
	binary.BigEndian.PutUint32(hdr[0:], 0x27051956) // magic
	binary.BigEndian.PutUint32(hdr[8:], uint32(epoch))
	binary.BigEndian.PutUint32(hdr[12:], uint32(len(data)))
	binary.BigEndian.PutUint32(hdr[24:], crc32.ChecksumIEEE(data))
	hdr[28] = 5 // OS: Linux
	hdr[29] = 2 // arch: ARM
	hdr[30] = 6 // type: script
	hdr[31] = 0 // compression: none
	copy(hdr[32:], "keso boot script")
	binary.BigEndian.PutUint32(hdr[4:], crc32.ChecksumIEEE(hdr))
	return append(hdr, data...)
}
