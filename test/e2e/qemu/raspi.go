package qemu

import "fmt"

// Raspberry Pi boards (Config.Board). QEMU 7.2's raspi3b boots a kernel
// directly (no GPU firmware, so no Pi firmware or U-Boot stage): -kernel,
// -dtb, -initrd, -append, and the SD card as if=sd (its size must be a
// power of two). It needs exactly 1 GiB of RAM and single-threaded TCG
// (NOTES.md). It has no PCI: no virtio devices, no RNG device.
func boardArgs(cfg Config) []string {
	var a []string
	switch cfg.Board {
	case "raspi3b":
		a = []string{"-M", "raspi3b", "-m", "1G", "-accel", "tcg,thread=single"}
	default:
		// An unknown board: let QEMU say so, with the name as given.
		a = []string{"-M", cfg.Board, "-accel", "tcg"}
		if cfg.MemMiB > 0 {
			a = append(a, "-m", fmt.Sprint(cfg.MemMiB))
		}
	}
	a = append(a, "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none")
	a = append(a, kernelArgs(cfg)...)
	for _, d := range cfg.Disks {
		a = append(a, "-drive", "file="+d+",if=sd,format=raw")
	}
	return append(a, cfg.Extra...)
}
