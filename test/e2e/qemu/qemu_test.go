package qemu

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the joined command line, in order
	}{
		{"bios cdrom", Config{Arch: "amd64", Firmware: BIOS, CDROM: "/x.iso", Boot: "d"},
			[]string{"-accel tcg", "-m 1024", "-no-reboot", "-serial stdio", "-M pc", "file=/x.iso,format=raw,media=cdrom,if=ide", "-boot d"}},
		{"uefi disk qcow2", Config{Arch: "amd64", Firmware: UEFI, Disks: []string{"/d.qcow2"}, MemMiB: 2048},
			[]string{"-m 2048", "unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd", "file=/vm/vars.fd", "file=/d.qcow2,format=qcow2", "virtio-blk-pci,drive=disk0,bootindex=1"}},
		{"netboot", Config{Arch: "amd64", Firmware: BIOS, TFTPDir: "/tftp", BootFile: "boot.ipxe", Boot: "n"},
			[]string{"-netdev user,id=n0,tftp=/tftp,bootfile=boot.ipxe", "virtio-net-pci,netdev=n0", "-boot n"}},
		{"armv7 direct", Config{Arch: "armv7", Firmware: Direct, Kernel: "/k", Initrd: "/i", Append: "console=ttyAMA0", Net: true},
			[]string{"-M virt,highmem=off", "-kernel /k", "-initrd /i", "-append console=ttyAMA0", "-netdev user,id=n0"}},
		{"arm64 cd", Config{Arch: "arm64", Firmware: UEFI, CDROM: "/c.iso"},
			[]string{"-M virt", "AAVMF_CODE.fd", "virtio-scsi-pci", "media=cdrom", "scsi-cd,drive=cd0"}},
		{"arm64 u-boot card", Config{Arch: "arm64", Firmware: UBoot, Disks: []string{"/sd.img"}},
			[]string{"-M virt", "-bios /usr/lib/u-boot/qemu_arm64/u-boot.bin", "file=/sd.img,format=raw"}},
	}
	for _, tt := range tests {
		got := strings.Join(Args(tt.cfg, "/vm"), " ")
		rest := got
		for _, w := range tt.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("%s: %q missing (or out of order) in\n%s", tt.name, w, got)
				break
			}
			rest = rest[i+len(w):]
		}
	}
}

func TestSlots(t *testing.T) {
	dir := t.TempDir()
	old, oldWait := SlotFiles, SlotWait
	SlotFiles = []string{filepath.Join(dir, "s0"), filepath.Join(dir, "s1")}
	t.Cleanup(func() { SlotFiles, SlotWait = old, oldWait })

	a := acquireSlot(t)
	b := acquireSlot(t)
	if a.Name() == b.Name() {
		t.Fatalf("both holders got slot %s", a.Name())
	}
	got := make(chan string)
	go func() {
		c := acquireSlot(t)
		got <- c.Name()
		releaseSlot(c)
	}()
	select {
	case n := <-got:
		t.Fatalf("a third VM got slot %s while two were held", n)
	case <-time.After(1500 * time.Millisecond):
	}
	releaseSlot(b)
	select {
	case n := <-got:
		if n != b.Name() {
			t.Errorf("third VM got %s, want the released %s", n, b.Name())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("third VM did not get the released slot")
	}
	releaseSlot(a)
}
