package agent

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/upgrade"
)

// On the Pi card (keso.mbr= on the command line) the A/B state is on MBR
// partition 1 of the disk with that signature, kept by U-Boot.
func TestBootPartitionOnThePiCard(t *testing.T) {
	root := t.TempDir()
	w := func(p string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mbr := make([]byte, 512)
	binary.LittleEndian.PutUint32(mbr[440:], 0x5eed1234)
	mbr[446+4] = 0x0e
	mbr[510], mbr[511] = 0x55, 0xaa
	w("sys/class/block/mmcblk0/uevent", []byte("DEVNAME=mmcblk0\nDEVTYPE=disk\n"))
	w("dev/mmcblk0", mbr)
	for _, p := range []string{"1", "2", "3", "4"} {
		w("sys/class/block/mmcblk0p"+p+"/uevent", []byte("DEVNAME=mmcblk0p"+p+"\nDEVTYPE=partition\nPARTN="+p+"\n"))
	}
	a := &Agent{FS: host.FS{Root: root}, Cmdline: "console=ttyS1,115200 panic=10 keso.mbr=5eed1234 keso.slot=b"}
	dev, loc, err := a.bootPartition()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dev, "/dev/mmcblk0p1"; got != want || !loc.UBoot() {
		t.Errorf("bootPartition() = %q, %+v; want %q on U-Boot", got, loc, want)
	}
	if _, ok := bootloader.LoaderOn(host.FS{Root: root}, loc).(bootloader.UBoot); !ok {
		t.Errorf("boot loader on the Pi card is not bootloader.UBoot")
	}

	a.Cmdline = "console=ttyS1,115200 panic=10 keso.mbr=0badcafe keso.slot=b"
	if _, _, err := a.bootPartition(); err == nil {
		t.Errorf("bootPartition() with an unknown disk signature: no error")
	}
	// Without keso.mbr= it is the GPT layout's ESP (which this machine
	// may or may not have), kept by systemd-boot.
	a.Cmdline = "console=ttyS0 keso.slot=a"
	_, loc, _ = a.bootPartition()
	if loc.UBoot() {
		t.Errorf("bootPartition() without keso.mbr= says U-Boot")
	}
	if _, ok := bootloader.LoaderOn(host.FS{Root: root}, loc).(bootloader.SystemdBoot); !ok {
		t.Errorf("boot loader on GPT is not bootloader.SystemdBoot")
	}
}

func TestAssessLine(t *testing.T) {
	for _, tc := range []struct {
		bs   upgrade.BootStatus
		bl   bootloader.Loader
		want string
	}{
		{upgrade.BootStatus{Slot: "a", Committed: true}, bootloader.UBoot{}, "slot a committed (U-Boot keso/boot.env)"},
		{upgrade.BootStatus{Slot: "b", Trial: true, TriesLeft: 2}, bootloader.SystemdBoot{}, "slot b on trial, 2 tries left (systemd-boot entries)"},
		{upgrade.BootStatus{Slot: "b"}, bootloader.UBoot{}, "slot b not committed (U-Boot keso/boot.env)"},
	} {
		if got := assessLine(tc.bs, tc.bl); got != tc.want {
			t.Errorf("assessLine(%+v) = %q, want %q", tc.bs, got, tc.want)
		}
	}
}
