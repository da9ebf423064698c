package qemu

import (
	"strings"
	"testing"
)

func TestArgsRaspi3b(t *testing.T) {
	got := strings.Join(Args(Config{Arch: "arm64", Board: "raspi3b", Kernel: "Image", DTB: "pi3.dtb", Initrd: "initrd",
		Append: "console=ttyAMA0,115200", Disks: []string{"sd.img"}}, t.TempDir()), " ")
	want := "-M raspi3b -m 1G -accel tcg,thread=single -display none -no-reboot -serial stdio -monitor none " +
		"-kernel Image -dtb pi3.dtb -initrd initrd -append console=ttyAMA0,115200 -drive file=sd.img,if=sd,format=raw"
	if got != want {
		t.Errorf("args\n got %s\nwant %s", got, want)
	}
	if strings.Contains(got, "virtio") {
		t.Errorf("a raspi3b command line with virt devices: %s", got)
	}
}
