package datasource

import (
	"bytes"
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
)

// bootVolume makes a FAT volume labelled KESO_BOOT (mkfs.vfat + mcopy, as
// a user's computer would write the card) holding files.
func bootVolume(t *testing.T, files map[string]string) string {
	t.Helper()
	needTool(t, "mkfs.vfat", "mcopy")
	dir := t.TempDir()
	img := filepath.Join(dir, "boot.fat")
	run(t, "mkfs.vfat", "-C", "-n", "KESO_BOOT", img, "8192")
	for name, content := range files {
		p := filepath.Join(dir, name)
		writeFile(t, p, content)
		run(t, "mcopy", "-oi", img, p, "::"+name)
	}
	return img
}

// TestCollectBootPartition: config on the Pi's boot partition is read on a
// node without any data_sources entry, merges after the state partition
// and before the cidata datasource, and can set data_sources itself.
func TestCollectBootPartition(t *testing.T) {
	needTool(t, "cloud-localds", "genisoimage")
	img := bootVolume(t, map[string]string{
		"config.txt":  "arm_64bit=1\n",
		"config.yaml": "#cloud-config\nhostname: store-pi-7\nkeso:\n  labels:\n    from: boot\n    site: boot\n",
		"meta-data":   "instance-id: iid-pi-7\nlocal-hostname: from-meta\n",
	})
	dir := t.TempDir()
	ud, md := filepath.Join(dir, "ud"), filepath.Join(dir, "md")
	writeFile(t, ud, "#cloud-config\nkeso:\n  labels:\n    from: cidata\n")
	writeFile(t, md, "instance-id: iid-cd\n")
	seed := filepath.Join(dir, "seed.iso")
	run(t, "cloud-localds", seed, ud, md)

	node := newFakeNode(t)
	node.attach("mmcblk0p1", img)
	node.attach("sr0", seed)
	writeFile(t, filepath.Join(node.root, DefaultsPath), "hostname: keso\n")
	writeFile(t, filepath.Join(node.root, StateConfigPath), "keso:\n  labels:\n    from: state\n    site: state\n")
	var log bytes.Buffer
	got := Collect(context.Background(), Inputs{Files: host.FS{Root: node.root}, Cmdline: "console=ttyS1", Fetchers: NodeFetchers(node.root), Log: &log})
	want := []string{DefaultsPath, StateConfigPath, "boot:/dev/mmcblk0p1:meta-data", "boot:/dev/mmcblk0p1:config.yaml",
		"cidata:/dev/sr0:user-data", CmdlineName} // cidata's meta-data has no hostname or keys: no document
	if !reflect.DeepEqual(names(got.Sources), want) {
		t.Errorf("sources\n got %q\nwant %q\n%s", names(got.Sources), want, log.String())
	}
	res := cloudconfig.Load(got.Sources...)
	if !res.Valid() {
		t.Fatalf("diagnostics: %v", res.Diagnostics)
	}
	if res.Config.Hostname != "store-pi-7" {
		t.Errorf("hostname = %q, want store-pi-7 (config.yaml wins over meta-data)", res.Config.Hostname)
	}
	if l := res.Config.Keso.Labels; l["from"] != "cidata" || l["site"] != "boot" {
		t.Errorf("labels = %v, want from=cidata (a datasource wins) and site=boot (boot wins over state)", l)
	}
	if got.Meta.InstanceID != "iid-pi-7" {
		t.Errorf("instance-id = %q, want the boot partition's iid-pi-7", got.Meta.InstanceID)
	}
	if !strings.Contains(log.String(), "found boot:/dev/mmcblk0p1") {
		t.Errorf("log does not report the boot partition:\n%s", log.String())
	}
}

// TestBootPartitionUserData: NoCloud files alone, and a boot partition
// without any config is not an error and adds nothing.
func TestBootPartitionUserData(t *testing.T) {
	img := bootVolume(t, map[string]string{"user-data": "#cloud-config\nhostname: from-ud\n"})
	node := newFakeNode(t)
	node.attach("mmcblk0p1", img)
	got := Collect(context.Background(), Inputs{Files: host.FS{Root: node.root}, Fetchers: Fetchers{Boot: &Devices{Root: node.root}}})
	if want := []string{"boot:/dev/mmcblk0p1:user-data", CmdlineName}; !reflect.DeepEqual(names(got.Sources), want) {
		t.Errorf("sources %q, want %q", names(got.Sources), want)
	}
	if res := cloudconfig.Load(got.Sources...); res.Config.Hostname != "from-ud" {
		t.Errorf("hostname = %q, want from-ud", res.Config.Hostname)
	}

	empty := bootVolume(t, map[string]string{"config.txt": "x\n"})
	node = newFakeNode(t)
	node.attach("mmcblk0p1", empty)
	got = Collect(context.Background(), Inputs{Files: host.FS{Root: node.root}, Fetchers: NodeFetchers(node.root)})
	if want := []string{CmdlineName}; !reflect.DeepEqual(names(got.Sources), want) || !got.Report.OK() {
		t.Errorf("empty boot partition: sources %q errors %v, want only the command line and no error", names(got.Sources), got.Report.Failures)
	}
}
