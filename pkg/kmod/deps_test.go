package kmod

import (
	"strings"
	"testing"
)

// A slice of a real modules.dep (Debian 6.1 cloud-amd64, depmod output).
const depSample = `kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/fs/squashfs/squashfs.ko:
kernel/drivers/scsi/sr_mod.ko: kernel/drivers/cdrom/cdrom.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/cdrom/cdrom.ko:
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
`

func TestLoadOrder(t *testing.T) {
	deps, err := ParseModulesDep(strings.NewReader(depSample))
	if err != nil {
		t.Fatal(err)
	}
	want, err := ParseModuleList(strings.NewReader("# root devices\nvirtio_pci\nvirtio-blk.ko\nvirtio_net sr_mod\nsquashfs\next4 # built in\n"))
	if err != nil {
		t.Fatal(err)
	}
	files, missing := LoadOrder(deps, want)
	gotNames := make([]string, len(files))
	for i, f := range files {
		gotNames[i] = ModuleName(f)
	}
	wantNames := "virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk failover net_failover virtio_net scsi_common scsi_mod cdrom sr_mod squashfs"
	if got := strings.Join(gotNames, " "); got != wantNames {
		t.Errorf("load order\n got  %s\n want %s", got, wantNames)
	}
	if got := strings.Join(missing, " "); got != "ext4" {
		t.Errorf("missing = %q, want %q", got, "ext4")
	}
	// Every module comes after all of its dependencies.
	pos := map[string]int{}
	for i, n := range gotNames {
		pos[n] = i
	}
	for _, n := range gotNames {
		for _, d := range deps[n].Deps {
			if pos[ModuleName(d)] > pos[n] {
				t.Errorf("%s loads before its dependency %s", n, ModuleName(d))
			}
		}
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/fs/isofs/isofs.ko": "isofs",
		"virtio-net":               "virtio_net",
		"kernel/x/ata_piix.ko.xz":  "ata_piix",
		"  nls_iso8859-1.ko.zst ":  "nls_iso8859_1",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}
