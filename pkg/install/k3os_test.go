package install

import (
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/keso-os/keso/pkg/blockdev"
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
