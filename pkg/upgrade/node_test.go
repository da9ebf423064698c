package upgrade

import (
	"path/filepath"
	"testing"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/sign"
)

func TestReadNode(t *testing.T) {
	dir := t.TempDir()
	root := host.FS{Root: filepath.Join(dir, "root")}
	esp := host.FS{Root: filepath.Join(dir, "esp")}
	pub, _, _ := sign.GenerateKey(nil)
	extra, _, _ := sign.GenerateKey(nil)
	must(t, root.WriteFileAtomic("/etc/os-release", []byte("NAME=keso\nVERSION_ID=\"1.4.0\"\n"), 0o644))
	must(t, root.WriteFileAtomic("/proc/cmdline", []byte("console=ttyS0 keso.slot=b panic=10\n"), 0o444))
	must(t, root.WriteFileAtomic(KeysDir+"/release.pub", []byte(sign.MarshalPublic(pub)+"\n"), 0o644))
	must(t, esp.WriteFileAtomic(bootloader.EntriesDir+"/slot-b.conf", bootloader.Render(bootloader.EntrySpec{Slot: "b", Version: 3, Options: "console=ttyS0 panic=10"}), 0o644))
	n, err := ReadNode(root, esp, []string{sign.MarshalPublic(extra)})
	if err != nil {
		t.Fatal(err)
	}
	if n.Version != "1.4.0" || n.Slot != "b" || n.Options != "console=ttyS0 panic=10" || len(n.TrustedKeys) != 2 || !n.TrustedKeys[0].Equal(pub) {
		t.Errorf("ReadNode = %+v", n)
	}
}
