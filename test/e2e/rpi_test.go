package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/image/sdcard"
	"github.com/keso-os/keso/test/e2e/qemu"
)

// Raspberry Pi SD card images: the card's structure checked with the
// tools a user has (sfdisk, fsck.vfat, mtools), and a boot of the arm64
// card in QEMU's raspi3b machine with a config file placed on its FAT
// boot partition, as a user would before putting the card in a Pi.

func needTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: %s not found (Debian fdisk, dosfstools, mtools: run scripts/deps.sh)", tool)
		}
	}
}

// fatOffset is where the boot partition starts (1 MiB), in mtools' syntax.
const fatOffset = "@@1M"

func mtype(t testing.TB, img, name string) []byte {
	t.Helper()
	out, err := exec.Command("mtype", "-i", img+fatOffset, "::"+name).Output()
	if err != nil {
		t.Fatalf("mtype %s from %s: %v", name, filepath.Base(img), err)
	}
	return out
}

func mcopyOut(t testing.TB, img, name, dst string) {
	t.Helper()
	if out, err := exec.Command("mcopy", "-o", "-i", img+fatOffset, "::"+name, dst).CombinedOutput(); err != nil {
		t.Fatalf("mcopy %s from %s: %v\n%s", name, filepath.Base(img), err, out)
	}
}

// rpiBoards are the DTBs each card must carry for its supported boards.
var rpiBoards = map[string][]string{
	"arm64": {"bcm2837-rpi-3-b.dtb", "bcm2837-rpi-3-b-plus.dtb", "bcm2837-rpi-3-a-plus.dtb", "bcm2837-rpi-cm3-io3.dtb",
		"bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2711-rpi-cm4-io.dtb"},
	"armv7": {"bcm2836-rpi-2-b.dtb", "bcm2837-rpi-3-b.dtb", "bcm2837-rpi-3-b-plus.dtb"},
}

func TestRPiImageStructure(t *testing.T) {
	skipUnlessE2E(t)
	needTools(t, "sfdisk", "fsck.vfat", "mtype", "mdir")
	t.Parallel()
	for _, arch := range []string{"arm64", "armv7"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			a := artifacts(t, arch)
			img := a.file(t, "keso-rpi-"+arch+".img")
			checkRPiStructure(t, arch, img)
		})
	}
}

func checkRPiStructure(t *testing.T, arch, img string) {
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if n := fi.Size(); n&(n-1) != 0 {
		t.Errorf("card image is %d bytes, not a power of two (QEMU's raspi machines refuse it)", n)
	}
	t.Logf("%s: %d MiB", filepath.Base(img), fi.Size()>>20)
	out, err := exec.Command("sfdisk", "-J", img).Output()
	if err != nil {
		t.Fatalf("sfdisk -J: %v", err)
	}
	var pt struct {
		PartitionTable struct {
			Label      string `json:"label"`
			ID         string `json:"id"`
			Partitions []struct {
				Start, Size int64
				Type        string
				Bootable    bool
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &pt); err != nil {
		t.Fatalf("sfdisk -J: %v\n%s", err, out)
	}
	p := pt.PartitionTable
	if p.Label != "dos" || len(p.Partitions) != 4 {
		t.Fatalf("partition table %s with %d partitions, want an MBR (dos) with 4", p.Label, len(p.Partitions))
	}
	var types []string
	for _, x := range p.Partitions {
		types = append(types, fmt.Sprintf("%s/%v", x.Type, x.Bootable))
	}
	if got, want := strings.Join(types, " "), "e/true 83/false 83/false 83/false"; got != want {
		t.Errorf("partition types %s, want %s (FAT16 boot first and active, root A, root B, state)", got, want)
	}
	if p.Partitions[0].Start != 2048 || p.Partitions[1].Size != p.Partitions[2].Size {
		t.Errorf("boot starts at %d (want 2048), root slots %d and %d sectors (want equal)", p.Partitions[0].Start, p.Partitions[1].Size, p.Partitions[2].Size)
	}
	data := make([]byte, 4)
	f, _ := os.Open(img)
	f.ReadAt(data, p.Partitions[1].Start*512)
	f.Close()
	if string(data) != "hsqs" {
		t.Errorf("root slot A starts with %q, want the squashfs magic hsqs", data)
	}

	// the FAT, checked by dosfstools
	fat := filepath.Join(t.TempDir(), "boot.fat")
	dd := exec.Command("dd", "if="+img, "of="+fat, "bs=512", fmt.Sprintf("skip=%d", p.Partitions[0].Start), fmt.Sprintf("count=%d", p.Partitions[0].Size), "status=none")
	if out, err := dd.CombinedOutput(); err != nil {
		t.Fatalf("dd: %v\n%s", err, out)
	}
	if out, err := exec.Command("fsck.vfat", "-n", fat).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n on the boot partition: %v\n%s", err, out)
	}
	os.Remove(fat)
	dir, _ := exec.Command("mdir", "-/", "-b", "-i", img+fatOffset, "::").Output()
	have := map[string]bool{}
	for _, l := range strings.Split(string(dir), "\n") {
		have[strings.TrimPrefix(strings.TrimSpace(l), "::/")] = true
	}
	need := []string{"bootcode.bin", "start.elf", "fixup.dat", "config.txt", "boot.scr", "keso/boot.env",
		"keso/a/vmlinuz", "keso/a/initrd", "keso/b/vmlinuz", "keso/b/initrd"}
	if arch == "arm64" {
		need = append(need, "start4.elf", "fixup4.dat", "u-boot.bin")
	} else {
		need = append(need, "u-boot-pi2.bin", "u-boot-pi3.bin")
	}
	need = append(need, rpiBoards[arch]...)
	for _, n := range need {
		if !have[n] {
			t.Errorf("boot partition lacks %s", n)
		}
	}
	if label, _ := exec.Command("mdir", "-i", img+fatOffset, "::").Output(); !strings.Contains(string(label), "is "+sdcard.BootLabel) {
		t.Errorf("boot partition's volume label: mdir says %q, want %s (the boot-partition datasource finds it by that)", label, sdcard.BootLabel)
	}
	cfg := string(mtype(t, img, "config.txt"))
	wantCfg := []string{"enable_uart=1", "upstream_kernel=1"}
	if arch == "arm64" {
		wantCfg = append(wantCfg, "arm_64bit=1", "kernel=u-boot.bin")
	} else {
		wantCfg = append(wantCfg, "[pi2]\nkernel=u-boot-pi2.bin", "[pi3]\nkernel=u-boot-pi3.bin")
	}
	for _, w := range wantCfg {
		if !strings.Contains(cfg, w) {
			t.Errorf("config.txt lacks %q:\n%s", w, cfg)
		}
	}
	if arch != "arm64" && strings.Contains(cfg, "arm_64bit") {
		t.Errorf("armv7 config.txt switches the CPU to 64-bit:\n%s", cfg)
	}
	// boot.scr is the U-Boot image of boot.cmd, and boot.cmd is the A/B
	// script with this card's disk signature.
	cmd := string(mtype(t, img, "boot.cmd"))
	scr := mtype(t, img, "boot.scr")
	if len(scr) < 72 || string(scr[72:]) != cmd {
		t.Errorf("boot.scr does not carry boot.cmd")
	}
	boot := map[string]string{"arm64": "booti", "armv7": "bootz"}[arch]
	for _, w := range []string{"keso/boot.env", "fatwrite", "keso_left", "keso.mbr=" + strings.TrimPrefix(p.ID, "0x"), boot + " ${kernel_addr_r}"} {
		if !strings.Contains(cmd, w) {
			t.Errorf("boot.cmd lacks %q:\n%s", w, cmd)
		}
	}
	env, err := bootloader.ParseUBootEnv(mtype(t, img, "keso/boot.env"))
	if err != nil || env != (bootloader.UBootEnv{Good: bootloader.SlotA}) {
		t.Errorf("keso/boot.env = %+v (%v), want slot a good, no trial", env, err)
	}
}

// rpiCmdline is the kernel command line boot.cmd gives slot a, with the
// console on the PL011 that QEMU's first serial port is (a Pi's header
// UART is the mini UART, ttyS1), and QEMU's watchdog quirk worked around.
func rpiCmdline(t testing.TB, bootCmd string) string {
	m := regexp.MustCompile(`setenv bootargs "([^"]*)"`).FindStringSubmatch(bootCmd)
	if m == nil {
		t.Fatalf("boot.cmd sets no bootargs:\n%s", bootCmd)
	}
	var out []string
	for _, f := range strings.Fields(strings.ReplaceAll(m[1], "${keso_boot}", "a")) {
		if !strings.HasPrefix(f, "console=") {
			out = append(out, f)
		}
	}
	// keso.watchdog=0: QEMU's BCM2835 power-management model resets the
	// machine as soon as the watchdog is started (it has no countdown),
	// so the agent arming bcm2835_wdt would reset the VM; on a Pi the
	// watchdog stays on.
	return strings.Join(append(append([]string{"console=ttyAMA0,115200"}, out...), "keso.watchdog=0"), " ")
}

// rpiVM is a raspi3b boot of a copy of the arm64 card.
type rpiVM struct {
	card, kernel, initrd, dtb, cmdline string
}

// prepareRPi copies the arm64 card, puts a config.yaml on its boot
// partition, and takes the kernel, initrd and DTB off the card and the
// command line from its boot.cmd (for slot).
func prepareRPi(t testing.TB, a *Artifacts, slot string) rpiVM {
	t.Helper()
	src := a.file(t, "keso-rpi-arm64.img")
	dir := t.TempDir()
	r := rpiVM{card: filepath.Join(dir, "sd.img"), kernel: filepath.Join(dir, "vmlinuz"), initrd: filepath.Join(dir, "initrd"),
		dtb: filepath.Join(dir, "bcm2837-rpi-3-b.dtb")}
	if out, err := exec.Command("cp", "--sparse=always", src, r.card).CombinedOutput(); err != nil {
		t.Fatalf("copy the card: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("#cloud-config\nhostname: store-pi-e2e\nkeso:\n  labels:\n    keso.io/sdcard: \"yes\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mcopy", "-o", "-i", r.card+fatOffset, cfg, "::config.yaml").CombinedOutput(); err != nil {
		t.Fatalf("put config.yaml on the boot partition: %v\n%s", err, out)
	}
	mcopyOut(t, r.card, "keso/"+slot+"/vmlinuz", r.kernel)
	mcopyOut(t, r.card, "keso/"+slot+"/initrd", r.initrd)
	mcopyOut(t, r.card, "bcm2837-rpi-3-b.dtb", r.dtb)
	r.cmdline = strings.ReplaceAll(rpiCmdline(t, string(mtype(t, r.card, "boot.cmd"))), "keso.slot=a", "keso.slot="+slot)
	if !strings.Contains(r.cmdline, "keso.slot="+slot) || !strings.Contains(r.cmdline, "keso.mbr=") {
		t.Fatalf("command line %q lacks keso.slot=%s or keso.mbr", r.cmdline, slot)
	}
	return r
}

func (r rpiVM) start(t testing.TB, name string) *qemu.VM {
	return qemu.Start(t, qemu.Config{LogDir: logDir(t), Name: name, Arch: "arm64", Board: "raspi3b",
		Kernel: r.kernel, Initrd: r.initrd, DTB: r.dtb, Append: r.cmdline, Disks: []string{r.card}})
}

// bootRPi boots slot a of a prepared card to the handoff and returns the
// stand-in's record, the console and the time to the handoff.
func bootRPi(t testing.TB, a *Artifacts, name string) (*Standin, string, time.Duration) {
	t.Helper()
	r := prepareRPi(t, a, "a")
	vm := r.start(t, name)
	s, took := handoff(t, vm)
	console := vm.Console()
	vm.Stop()
	os.Remove(r.card)
	return s, console, took
}

// TestRPiBootRaspi3b boots the arm64 card in QEMU's Raspberry Pi 3B: the
// kernel, initrd and DTB come from the card's boot partition, the root
// from its slot A (found by the MBR signature), the state partition grows
// to the card's end, and a config.yaml dropped on the boot partition is
// applied.
func TestRPiBootRaspi3b(t *testing.T) {
	skipUnlessE2E(t)
	needTools(t, "mtype", "mcopy")
	t.Parallel()
	a := artifacts(t, "arm64")
	s, console, took := bootRPi(t, a, "rpi3b")
	t.Logf("raspi3b: k3s handoff %s after QEMU start", took.Round(100*time.Millisecond))
	checkCommon(t, s, a, "disk")
	if s.Boot.Slot != "a" || s.Boot.State != "/dev/mmcblk0p4" {
		t.Errorf("boot.json slot %q state %q, want a and /dev/mmcblk0p4", s.Boot.Slot, s.Boot.State)
	}
	checkVerityRoot(t, s, "/dev/mmcblk0p2") // slot A on the SD card
	if g := s.Boot.StateGrown; len(g) != 2 || g[1] <= g[0] {
		t.Errorf("state blocks before/after = %v, want grown to the card's end", g)
	}
	if v := s.Mounts["/var"]; v.FSType != "ext4" {
		t.Errorf("/var is %+v, want the ext4 state partition", v)
	}
	cfgYAML := ""
	if s.ConfigYAML != nil {
		cfgYAML = *s.ConfigYAML
	}
	if !strings.Contains(cfgYAML, "keso.io/sdcard=yes") {
		t.Errorf("k3s config.yaml lacks the label from the card's config.yaml:\n%s", cfgYAML)
	}
	for _, want := range []string{"datasource: found boot:/dev/mmcblk0p1", "hostname: set hostname (store-pi-e2e)",
		"grew partition mmcblk0p4 to the end of the disk"} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if strings.Contains(console, `unknown key "mbr"`) {
		t.Errorf("keso.mbr was taken for config")
	}
}

// TestRPiFailedSlotReboots boots the card's empty slot B: the initrd must
// say what it found and restart the machine (through the BCM2835
// watchdog, an initrd module), since U-Boot's try counter only counts
// boots that end in a restart. QEMU runs with -no-reboot, so the restart
// ends the VM.
func TestRPiFailedSlotReboots(t *testing.T) {
	skipUnlessE2E(t)
	needTools(t, "mtype", "mcopy")
	t.Parallel()
	a := artifacts(t, "arm64")
	r := prepareRPi(t, a, "b")
	vm := r.start(t, "rpi3b-empty-slot")
	if _, _, err := vm.Expect(regexp.MustCompile(`/dev/mmcblk0p3 holds zeros, not a squashfs`), bootTimeout); err != nil {
		t.Fatalf("the initrd did not report the empty slot B: %v", err)
	}
	select {
	case <-vm.Exited():
		if !strings.Contains(vm.Console(), "reboot: Restarting system") || strings.Contains(vm.Console(), "Reboot failed") {
			t.Errorf("QEMU ended without the kernel restarting the machine")
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the machine did not restart within 90 s of the failure (no restart handler: bcm2835_wdt missing from the initrd?)")
	}
}
