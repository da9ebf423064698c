package install

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/keso-os/keso/pkg/blockdev"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/image/raw"
)

const sPerMiB = mib / 512

// k3osUEFI is a disk as k3OS's install.sh leaves it on UEFI (parted
// 0%–50MB FAT32 ESP, 50MB–750MB ext4), before its first boot grows the
// state partition.
func k3osUEFI() []DiskPart {
	return []DiskPart{
		{Index: 1, Start: 2048, End: 97655, Type: gpt.EFISystemPartition, Probe: blockdev.Probe{Type: "vfat", Label: "K3OS_GRUB"}},
		{Index: 2, Start: 97656, End: 1464843, Type: gpt.LinuxFilesystem, Probe: blockdev.Probe{Type: "ext4", Label: "K3OS_STATE"}},
	}
}

func TestFindK3OS(t *testing.T) {
	uefi := k3osUEFI()
	bios := []DiskPart{{Index: 1, Start: 2048, End: 1367187, Probe: blockdev.Probe{Type: "ext4", Label: "K3OS_STATE"}}}
	other := []DiskPart{{Index: 1, Start: 2048, End: 99999, Probe: blockdev.Probe{Type: "ext4", Label: "data"}}}
	for _, tc := range []struct {
		name      string
		table     string
		parts     []DiskPart
		wantFound bool
		wantErr   string
	}{
		{"uefi k3os", "gpt", uefi, true, ""},
		{"bios k3os", "mbr", bios, true, "BIOS k3OS disk (mbr partition table"},
		{"gpt without its ESP", "gpt", uefi[1:], true, "no K3OS_GRUB ESP"},
		{"another disk", "gpt", other, false, ""},
		{"empty disk", "", nil, false, ""},
	} {
		k, found, err := FindK3OS(tc.table, tc.parts)
		if found != tc.wantFound {
			t.Errorf("%s: found = %v, want %v", tc.name, found, tc.wantFound)
		}
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "nothing was written")) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
		}
		if tc.name == "uefi k3os" && (k.State.Index != 2 || k.Grub.Index != 1) {
			t.Errorf("%s: State %d, Grub %d; want 2 and 1", tc.name, k.State.Index, k.Grub.Index)
		}
	}
}

func TestPlanBeside(t *testing.T) {
	const sq = 60 * mib // slots of MinRootMiB
	disk := int64(8 << 30)
	l, err := PlanBeside("amd64", k3osUEFI(), disk, sq)
	if err != nil {
		t.Fatal(err)
	}
	first := uint64(1464843/sPerMiB+1) * sPerMiB // 716 MiB: the first whole MiB after K3OS_STATE
	want := []raw.Part{
		{Index: 3, Label: raw.LabelEFI, Type: gpt.EFISystemPartition, Start: first, End: first + EFIMiB*sPerMiB - 1},
		{Index: 4, Label: raw.LabelRootA, Type: raw.RootType("amd64"), Start: first + EFIMiB*sPerMiB, End: first + (EFIMiB+MinRootMiB)*sPerMiB - 1},
		{Index: 5, Label: raw.LabelRootB, Type: raw.RootType("amd64"), Start: first + (EFIMiB+MinRootMiB)*sPerMiB, End: first + (EFIMiB+2*MinRootMiB)*sPerMiB - 1},
		{Index: 6, Label: raw.LabelState, Type: gpt.LinuxFilesystem, Start: first + (EFIMiB+2*MinRootMiB)*sPerMiB, End: uint64(disk/mib-1)*sPerMiB - 1},
	}
	if len(l.New) != len(want) {
		t.Fatalf("New = %+v, want %+v", l.New, want)
	}
	for i := range want {
		if got := l.New[i]; got != want[i] {
			t.Errorf("New[%d] = %+v, want %+v", i, got, want[i])
		}
	}
	if len(l.Keep) != 2 || l.Keep[1].Probe.Label != K3OSStateLabel {
		t.Errorf("Keep = %+v, want k3OS's two partitions", l.Keep)
	}

	// A k3OS disk whose first boot grew K3OS_STATE to the end: refused,
	// saying what is needed.
	grown := k3osUEFI()
	grown[1].End = uint64(disk/512) - 34
	_, err = PlanBeside("amd64", grown, disk, sq)
	for _, w := range []string{"leave 0 MiB free", "needs 3328 MiB beside them", "shrink K3OS_STATE", "nothing was written"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("grown K3OS_STATE: err = %v, want it to say %q", err, w)
		}
	}
	// Just enough, and one MiB short.
	need := int64(716+EFIMiB+2*MinRootMiB+MinStateMiB+1) * mib
	if _, err := PlanBeside("amd64", k3osUEFI(), need, sq); err != nil {
		t.Errorf("a disk of exactly %d MiB: %v", need/mib, err)
	}
	if _, err := PlanBeside("amd64", k3osUEFI(), need-mib, sq); err == nil {
		t.Errorf("a disk one MiB short: planned, want refused")
	}
}

// TestK3OSMovesStayInside: every move names relative paths, each source
// under k3OS's config or data folders.
func TestK3OSMovesStayInside(t *testing.T) {
	for _, m := range K3OSMoves {
		if strings.HasPrefix(m.From, "/") || strings.HasPrefix(m.To, "/") || strings.Contains(m.From+m.To, "..") {
			t.Errorf("%+v: want relative paths inside the two file systems", m)
		}
		if !strings.HasPrefix(m.From, "k3os/system/") && !strings.HasPrefix(m.From, "k3os/data/") {
			t.Errorf("%s: not under k3os/system or k3os/data", m.From)
		}
	}
}

// k3osDiskFile lays a disk file out as k3OS's install.sh does on UEFI
// (sgdisk at the 1 MiB-aligned sectors parted picks for 0%–50MB–750MB: a FAT32 ESP labelled K3OS_GRUB, an ext4
// labelled K3OS_STATE holding tree), with free space after them.
func k3osDiskFile(t *testing.T, dir string, size int64, tree string) string {
	t.Helper()
	disk := filepath.Join(dir, "k3os.img")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("sgdisk", "-n", "1:2048:98303", "-t", "1:ef00", "-c", "1:primary", "-n", "2:98304:1464319", "-t", "2:8300", "-c", "2:primary", disk)
	grub := filepath.Join(dir, "grub.img")
	run("mkfs.vfat", "-C", "-F", "32", "-n", "K3OS_GRUB", grub, "40960")
	state := filepath.Join(dir, "state.img")
	run("mke2fs", "-q", "-t", "ext4", "-L", "K3OS_STATE", "-d", tree, state, "32M")
	run("dd", "if="+grub, "of="+disk, "bs=512", "seek=2048", "conv=notrunc,sparse", "status=none")
	run("dd", "if="+state, "of="+disk, "bs=512", "seek=98304", "conv=notrunc,sparse", "status=none")
	return disk
}

func sumRange(t *testing.T, f *os.File, start, n int64) [32]byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, start); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestWriteBesideK3OS: keso is written beside a k3OS disk without one
// byte of k3OS's partitions changing; the firmware keeps booting k3OS
// (K3OS_GRUB stays the only ESP) until SwitchFromK3OS, after which
// KESO_EFI is the ESP and K3OS_GRUB plain FAT. sgdisk checks each table.
func TestWriteBesideK3OS(t *testing.T) {
	need(t, "sgdisk", "mkfs.vfat", "mke2fs", "dd")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "k3os/system"), 0o755)
	os.WriteFile(filepath.Join(tree, "k3os/system/config.yaml"), []byte("hostname: store-7\n"), 0o600)
	const size = 4200 * mib
	diskPath := k3osDiskFile(t, dir, size, tree)
	disk, err := os.OpenFile(diskPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	grubSum, stateSum := sumRange(t, disk, 2048*512, 95608*512), sumRange(t, disk, 98304*512, 32*mib)

	table, parts, err := ReadParts(disk)
	if err != nil || table != "gpt" || len(parts) != 2 {
		t.Fatalf("ReadParts = %q, %+v, %v; want gpt and two partitions", table, parts, err)
	}
	k, found, err := FindK3OS(table, parts)
	if !found || err != nil {
		t.Fatalf("FindK3OS(%+v): %v, %v; want a UEFI k3OS disk", parts, found, err)
	}
	l, err := PlanBeside("amd64", parts, size, mib)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := raw.MakeExt4(t.Context(), dir, 16*mib, raw.LabelState, raw.GUID("t"), 0)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		return p
	}
	in := Inputs{Arch: "amd64", Squashfs: write("root.squashfs", bytes.Repeat([]byte("SQSH"), 1<<18)), Kernel: write("vmlinuz", []byte("kernel")),
		Initrd: write("initrd", []byte("initrd")), Loader: write("BOOTX64.EFI", []byte("MZ loader")), StateImage: ext, Seed: "t"}
	if err := WriteBeside(disk, l, in); err != nil {
		t.Fatal(err)
	}
	types := func(stage string) string {
		t.Helper()
		if out, err := exec.Command("sgdisk", "-v", diskPath).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
			t.Errorf("%s: sgdisk -v: %v\n%s", stage, err, out)
		}
		out, _ := exec.Command("sgdisk", "-p", diskPath).CombinedOutput()
		var got []string
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 7 && f[0] >= "1" && f[0] <= "9" {
				got = append(got, f[0]+":"+f[5]+":"+f[6])
			}
		}
		return strings.Join(got, " ")
	}
	if got, want := types("after WriteBeside"), "1:EF00:primary 2:8300:primary 3:8300:KESO_EFI 4:8304:KESO_ROOT_A 5:8304:KESO_ROOT_B 6:8300:KESO_STATE"; got != want {
		t.Errorf("after WriteBeside: partitions %s, want %s", got, want)
	}
	if sumRange(t, disk, 2048*512, 95608*512) != grubSum || sumRange(t, disk, 98304*512, 32*mib) != stateSum {
		t.Errorf("WriteBeside changed k3OS's partitions")
	}
	// The install stopped here (a power cut before the switch): run again,
	// it plans over its own partitions and writes the same table.
	table, parts, err = ReadParts(disk)
	if err != nil || len(parts) != 6 {
		t.Fatalf("ReadParts after an unfinished install = %q, %+v, %v; want six partitions", table, parts, err)
	}
	again, err := PlanBeside("amd64", parts, size, mib)
	if err != nil {
		t.Fatalf("PlanBeside over an unfinished install: %v", err)
	}
	if got, want := fmt.Sprint(again.New), fmt.Sprint(l.New); got != want {
		t.Errorf("PlanBeside over an unfinished install: New = %s, want the first plan's %s", got, want)
	}
	if len(again.Keep) != 2 {
		t.Errorf("PlanBeside over an unfinished install: Keep = %+v, want k3OS's two partitions", again.Keep)
	}
	if err := WriteBeside(disk, again, in); err != nil {
		t.Fatalf("WriteBeside over an unfinished install: %v", err)
	}
	if got, want := types("after WriteBeside again"), "1:EF00:primary 2:8300:primary 3:8300:KESO_EFI 4:8304:KESO_ROOT_A 5:8304:KESO_ROOT_B 6:8300:KESO_STATE"; got != want {
		t.Errorf("after WriteBeside again: partitions %s, want %s", got, want)
	}
	if err := SwitchFromK3OS(disk, l, k); err != nil {
		t.Fatal(err)
	}
	if got, want := types("after SwitchFromK3OS"), "1:0700:primary 2:8300:primary 3:EF00:KESO_EFI 4:8304:KESO_ROOT_A 5:8304:KESO_ROOT_B 6:8300:KESO_STATE"; got != want {
		t.Errorf("after SwitchFromK3OS: partitions %s, want %s", got, want)
	}
	if sumRange(t, disk, 2048*512, 95608*512) != grubSum || sumRange(t, disk, 98304*512, 32*mib) != stateSum {
		t.Errorf("SwitchFromK3OS changed k3OS's partitions")
	}
	// keso now boots from the disk: installing beside k3OS again is refused.
	_, parts, _ = ReadParts(disk)
	if _, err := PlanBeside("amd64", parts, size, mib); err == nil || !strings.Contains(err.Error(), "keso already boots from this disk") {
		t.Errorf("PlanBeside after the switch: %v, want refused", err)
	}
	// Planned against a table that changed since: refused, nothing written.
	l.Keep[1].End++
	if err := WriteBeside(disk, l, in); err == nil || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("WriteBeside with a stale plan: %v, want refused", err)
	}
}

// TestCopyFromK3OS: what a k3OS node keeps lands where keso reads it,
// byte for byte; what the k3OS disk lacks is reported missing; the k3OS
// side is not written.
func TestCopyFromK3OS(t *testing.T) {
	k3os, keso := host.FS{Root: t.TempDir()}, host.FS{Root: t.TempDir()}
	files := map[string]string{
		"k3os/system/config.yaml":                                 "hostname: store-7\nk3os:\n  token: secret\n",
		"k3os/data/var/lib/rancher/k3s/server/token":              "K10abc::server:def\n",
		"k3os/data/var/lib/rancher/k3s/agent/client-kubelet.crt":  "CERT\n",
		"k3os/data/var/lib/rancher/k3os/node/password":            "0123456789abcdef\n",
		"k3os/data/var/lib/rancher/k3os/ssh/ssh_host_ed25519_key": "KEY\n",
		"k3os/data/home/rancher/.bash_history":                    "sudo k3os upgrade\n",
	}
	for p, c := range files {
		if err := k3os.WriteFileAtomic("/"+p, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := k3os.TreeSums("/")
	done, err := CopyFromK3OS(k3os, keso)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"/keso/config.yaml":                        files["k3os/system/config.yaml"],
		"/var/lib/rancher/k3s/server/token":        files["k3os/data/var/lib/rancher/k3s/server/token"],
		"/etc-overlay/upper/rancher/node/password": files["k3os/data/var/lib/rancher/k3os/node/password"],
		"/var/lib/keso/ssh/ssh_host_ed25519_key":   files["k3os/data/var/lib/rancher/k3os/ssh/ssh_host_ed25519_key"],
		"/home/rancher/.bash_history":              files["k3os/data/home/rancher/.bash_history"],
	} {
		if got, err := keso.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", p, got, err, want)
		}
	}
	var missing []string
	for _, m := range done {
		if m.Missing {
			missing = append(missing, m.From)
		}
	}
	if got, want := strings.Join(missing, " "), "k3os/data/var/lib/rancher/k3os/hostname k3os/data/var/lib/rancher/k3os/ssh/ssh_host_ed25519_key.pub k3os/data/var/lib/rancher/k3os/ssh/ssh_host_rsa_key k3os/data/var/lib/rancher/k3os/ssh/ssh_host_rsa_key.pub k3os/data/root k3os/data/opt"; got != want {
		t.Errorf("missing = %s, want %s", got, want)
	}
	after, _ := k3os.TreeSums("/")
	if len(after) != len(before) {
		t.Errorf("the k3OS side changed: %d files before, %d after", len(before), len(after))
	}
}

func TestPartitionDevice(t *testing.T) {
	for _, tc := range []struct {
		disk string
		n    int
		want string
	}{
		{"/dev/sda", 2, "/dev/sda2"}, {"/dev/vda", 1, "/dev/vda1"},
		{"/dev/nvme0n1", 2, "/dev/nvme0n1p2"}, {"/dev/mmcblk0", 3, "/dev/mmcblk0p3"},
	} {
		if got := PartitionDevice(tc.disk, tc.n); got != tc.want {
			t.Errorf("PartitionDevice(%q, %d) = %q, want %q", tc.disk, tc.n, got, tc.want)
		}
	}
}
