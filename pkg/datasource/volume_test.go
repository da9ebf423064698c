package datasource

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/blockdev"
)

// needTool skips loudly when a host tool the test drives is missing.
// scripts/deps.sh installs all of them in CI.
func needTool(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPED: %s is not installed (Debian: apt-get install cloud-image-utils genisoimage dosfstools mtools; scripts/deps.sh does it)", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeNode is a root with a sysfs block listing and /dev entries that are
// image files: the real reader code runs on them as on a device.
type fakeNode struct {
	t    *testing.T
	root string
}

func newFakeNode(t *testing.T) fakeNode {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sys/class/block"), 0o755); err != nil {
		t.Fatal(err)
	}
	return fakeNode{t: t, root: root}
}

// attach makes image appear as /dev/name (size 0 means an empty drive).
func (n fakeNode) attach(name, image string) {
	n.t.Helper()
	sys := filepath.Join(n.root, "sys/class/block", name)
	size := "0"
	if image != "" {
		st, err := os.Stat(image)
		if err != nil {
			n.t.Fatal(err)
		}
		size = strconv.FormatInt(st.Size()/512, 10)
		data, err := os.ReadFile(image)
		if err != nil {
			n.t.Fatal(err)
		}
		writeFile(n.t, filepath.Join(n.root, "dev", name), string(data))
	}
	writeFile(n.t, filepath.Join(sys, "size"), size+"\n")
	writeFile(n.t, filepath.Join(sys, "uevent"), "MAJOR=11\nMINOR=0\nDEVNAME="+name+"\nDEVTYPE=disk\n")
}

const seedUserData = `#cloud-config
hostname: from-user-data
ssh_authorized_keys:
  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBy0ud1 store@hq
keso:
  sysctl:
    net.ipv4.ip_forward: "1"
`

const seedMetaData = `instance-id: iid-store-0042
local-hostname: store-0042
public-keys:
  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMetaKey1 ops@hq
`

// TestNoCloudSeedsFromCloudLocalds makes real seeds with Debian's
// cloud-localds, ISO 9660 and FAT, and reads them through NoCloud.Fetch.
func TestNoCloudSeedsFromCloudLocalds(t *testing.T) {
	needTool(t, "cloud-localds", "genisoimage", "mkfs.vfat", "mcopy")
	dir := t.TempDir()
	ud, md := filepath.Join(dir, "ud"), filepath.Join(dir, "md")
	writeFile(t, ud, seedUserData)
	writeFile(t, md, seedMetaData)
	for _, tc := range []struct {
		name   string
		args   []string
		fstype string
	}{
		{"iso9660", nil, blockdev.FSISO9660},
		{"vfat", []string{"-f", "vfat"}, blockdev.FSFAT12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(dir, "seed-"+tc.name+".img")
			run(t, "cloud-localds", append(append([]string{}, tc.args...), img, ud, md)...)

			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			l, ok := blockdev.ProbeLabel(f)
			f.Close()
			if !ok || l.FSType != tc.fstype || !strings.EqualFold(l.Label, "cidata") {
				t.Fatalf("ProbeLabel = %+v, %v; want %s labelled cidata", l, ok, tc.fstype)
			}

			node := newFakeNode(t)
			node.attach("sr0", "") // an empty CD drive is skipped
			node.attach("sr1", img)
			node.attach("vda", filepath.Join(dir, "md")) // not a file system
			got, err := NoCloud{Devices: Devices{Root: node.root}}.Fetch(context.Background())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			want := Found{
				Origin:       "cidata:/dev/sr1",
				UserData:     []byte(seedUserData),
				UserDataName: "cidata:/dev/sr1:user-data",
				Meta: Meta{InstanceID: "iid-store-0042", Hostname: "store-0042",
					PublicKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMetaKey1 ops@hq"}},
				MetaName: "cidata:/dev/sr1:meta-data",
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Fetch:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestNoCloudUserDataOnly: cloud-localds without meta-data still writes a
// meta-data file (an empty one); the seed must be read.
func TestNoCloudUserDataOnly(t *testing.T) {
	needTool(t, "cloud-localds", "genisoimage")
	dir := t.TempDir()
	ud := filepath.Join(dir, "ud")
	writeFile(t, ud, "#cloud-config\nhostname: only-ud\n")
	img := filepath.Join(dir, "seed.iso")
	run(t, "cloud-localds", img, ud)
	node := newFakeNode(t)
	node.attach("sr0", img)
	got, err := NoCloud{Devices: Devices{Root: node.root}}.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if string(got.UserData) != "#cloud-config\nhostname: only-ud\n" || got.Meta.Hostname != "" {
		t.Errorf("got user-data %q meta %+v; want the user-data and no hostname", got.UserData, got.Meta)
	}
}

// TestFATVariants: FAT16 and FAT32 volumes, upper-case labels (as Windows
// writes them), a FAT on a stick's whole disk, and a label entry in the
// root directory that differs from the boot sector (the root entry wins).
func TestFATVariants(t *testing.T) {
	needTool(t, "mkfs.vfat", "mcopy")
	dir := t.TempDir()
	ud := filepath.Join(dir, "user-data")
	// Larger than a cluster, so that reads cross cluster boundaries.
	udText := "#cloud-config\nhostname: fat\n" + strings.Repeat("# padding line to span several clusters\n", 400)
	writeFile(t, ud, udText)
	for _, tc := range []struct {
		name, label, fat string
		sizeMiB          int64
		fstype           string
	}{
		{"fat16", "CIDATA", "16", 16, blockdev.FSFAT16},
		{"fat32", "cidata", "32", 64, blockdev.FSFAT32},
		{"fat12-upper", "CIDATA", "12", 1, blockdev.FSFAT12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(dir, tc.name+".img")
			if err := os.WriteFile(img, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, tc.sizeMiB<<20); err != nil {
				t.Fatal(err)
			}
			run(t, "mkfs.vfat", "-F", tc.fat, "-n", tc.label, img)
			run(t, "mcopy", "-oi", img, ud, "::")
			node := newFakeNode(t)
			node.attach("sdb", img)
			got, err := NoCloud{Devices: Devices{Root: node.root}}.Fetch(context.Background())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if string(got.UserData) != udText {
				t.Errorf("user-data: got %d bytes, want the %d bytes written", len(got.UserData), len(udText))
			}
			f, _ := os.Open(img)
			l, _ := blockdev.ProbeLabel(f)
			f.Close()
			if l.FSType != tc.fstype || l.Label != tc.label {
				t.Errorf("ProbeLabel = %+v, want %s %q", l, tc.fstype, tc.label)
			}
		})
	}

	t.Run("root-entry-wins", func(t *testing.T) {
		img := filepath.Join(dir, "relabel.img")
		os.WriteFile(img, nil, 0o644)
		os.Truncate(img, 1<<20)
		run(t, "mkfs.vfat", "-n", "CIDATA", img)
		// Overwrite the boot sector's copy only (FAT12/16: offset 43).
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte("OLDLABEL   "), 43)
		l, ok := blockdev.ProbeLabel(f)
		f.Close()
		if !ok || l.Label != "CIDATA" {
			t.Errorf("ProbeLabel = %+v, %v; want the root directory's CIDATA", l, ok)
		}
	})
}

func TestProbeLabelRejects(t *testing.T) {
	dir := t.TempDir()
	zeros := filepath.Join(dir, "zeros")
	os.WriteFile(zeros, make([]byte, 64<<10), 0o644)
	mbr := make([]byte, 64<<10)
	mbr[510], mbr[511] = 0x55, 0xAA // an MBR signature but no BPB
	mbrFile := filepath.Join(dir, "mbr")
	os.WriteFile(mbrFile, mbr, 0o644)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("tiny"), 0o644)
	for _, p := range []string{zeros, mbrFile, short} {
		f, _ := os.Open(p)
		l, ok := blockdev.ProbeLabel(f)
		f.Close()
		if ok {
			t.Errorf("ProbeLabel(%s) = %+v, true; want not a file system", filepath.Base(p), l)
		}
	}
}

func TestNoCloudNotFound(t *testing.T) {
	needTool(t, "genisoimage")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "files/x"), "x")
	other := filepath.Join(dir, "other.iso")
	run(t, "genisoimage", "-quiet", "-o", other, "-V", "KESO", "-R", "-J", filepath.Join(dir, "files"))
	node := newFakeNode(t)
	node.attach("sr0", other)
	_, err := NoCloud{Devices: Devices{Root: node.root}}.Fetch(context.Background())
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Fetch = %v; want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "cidata") {
		t.Errorf("error %q should name the label it looked for", err)
	}
}

// TestConfigDrive makes OpenStack config drives the way Nova does
// (genisoimage -R -J -V config-2; and vfat) and reads them.
func TestConfigDrive(t *testing.T) {
	needTool(t, "genisoimage", "mkfs.vfat", "mcopy")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	meta, err := os.ReadFile("testdata/openstack/meta_data.json")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tree, "openstack/latest/meta_data.json"), string(meta))
	writeFile(t, filepath.Join(tree, "openstack/latest/user_data"), "#cloud-config\nkeso:\n  labels:\n    site: store-7\n")
	writeFile(t, filepath.Join(tree, "ec2/latest/meta-data.json"), "{}")
	iso := filepath.Join(dir, "config-2.iso")
	run(t, "genisoimage", "-quiet", "-o", iso, "-ldots", "-allow-lowercase", "-allow-multidot", "-l",
		"-publisher", "OpenStack Compute", "-J", "-r", "-V", "config-2", tree)
	vfat := filepath.Join(dir, "config-2.vfat")
	os.WriteFile(vfat, nil, 0o644)
	os.Truncate(vfat, 64<<20)
	run(t, "mkfs.vfat", "-n", "config-2", vfat)
	run(t, "mcopy", "-o", "-s", "-i", vfat, filepath.Join(tree, "openstack"), filepath.Join(tree, "ec2"), "::")

	for _, img := range []string{iso, vfat} {
		t.Run(filepath.Ext(img)[1:], func(t *testing.T) {
			node := newFakeNode(t)
			node.attach("vdb", img)
			got, err := ConfigDrive{Devices: Devices{Root: node.root}}.Fetch(context.Background())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if got.Origin != "config-2:/dev/vdb" || got.UserDataName != "config-2:/dev/vdb:openstack/latest/user_data" {
				t.Errorf("names: origin %q user-data %q", got.Origin, got.UserDataName)
			}
			if !strings.Contains(string(got.UserData), "site: store-7") {
				t.Errorf("user_data = %q", got.UserData)
			}
			wantMeta, _ := ParseOpenStackMeta(meta)
			if !reflect.DeepEqual(got.Meta, wantMeta) {
				t.Errorf("meta = %+v, want %+v", got.Meta, wantMeta)
			}
		})
	}
}

// TestDevicesWait: a seed whose device appears while Find is waiting is
// found; without Wait, one scan decides.
func TestDevicesWait(t *testing.T) {
	needTool(t, "cloud-localds", "genisoimage")
	dir := t.TempDir()
	ud := filepath.Join(dir, "ud")
	writeFile(t, ud, "#cloud-config\n")
	img := filepath.Join(dir, "seed.iso")
	run(t, "cloud-localds", img, ud)
	node := newFakeNode(t)
	if _, _, err := (Devices{Root: node.root}).Find("cidata"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find without devices = %v; want ErrNotFound", err)
	}
	// Stage the device files, then make sysfs list it after a while.
	staged := newFakeNode(t)
	staged.attach("sr0", img)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(300 * time.Millisecond)
		os.Rename(filepath.Join(staged.root, "dev"), filepath.Join(node.root, "dev"))
		os.Rename(filepath.Join(staged.root, "sys/class/block/sr0"), filepath.Join(node.root, "sys/class/block/sr0"))
	}()
	v, _, err := Devices{Root: node.root, Wait: 10 * time.Second}.Find("cidata")
	<-done
	if err != nil {
		t.Fatalf("Find with Wait: %v", err)
	}
	v.Close()
	if v.Device != "/dev/sr0" {
		t.Errorf("found %s, want /dev/sr0", v.Device)
	}
}
