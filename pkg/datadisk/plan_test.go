package datadisk

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/keso-os/keso/pkg/blockdev"
	"github.com/keso-os/keso/pkg/cloudconfig"
)

func TestPlan(t *testing.T) {
	st := State{
		Devices: map[string]Device{
			"/dev/vdb": {Path: "/dev/vdb", Dev: "252:16"},                                                        // empty
			"/dev/vdc": {Path: "/dev/vdc", Dev: "252:32", Probe: blockdev.Probe{Type: "ext4", Label: "data"}},    // ours
			"/dev/vdd": {Path: "/dev/vdd", Dev: "252:48", Probe: blockdev.Probe{Type: "vfat", Label: "USB"}},     // someone's
			"/dev/vde": {Path: "/dev/vde", Dev: "252:64", Probe: blockdev.Probe{Type: "gpt", Label: ""}},         // partitioned
			"/dev/vdf": {Path: "/dev/vdf", Dev: "252:80", Probe: blockdev.Probe{Type: "ext3", Label: "logs"}},    // old ext3
			"/dev/sr0": {Path: "/dev/sr0", Dev: "11:0", Probe: blockdev.Probe{Type: "iso9660", Label: "cidata"}}, // seed
			"/dev/vdg": {Path: "/dev/vdg", Dev: "252:96", Probe: blockdev.Probe{Type: "ext4", Label: "twin"}},    // label clash
			"/dev/vdh": {Path: "/dev/vdh", Dev: "252:112", Probe: blockdev.Probe{Type: "ext4", Label: "twin"}},   // label clash
			"/dev/vdi": {Path: "/dev/vdi", Dev: "252:128", Probe: blockdev.Probe{Type: "ext4", Label: "other"}},  // force relabel
		},
		Mounts: []Mounted{
			{Dev: "252:32", Target: "/var/lib/data", FSType: "ext4", Source: "/dev/vdc"},
			{Dev: "0:22", Target: "/mnt/busy", FSType: "tmpfs", Source: "tmpfs"},
		},
	}
	for _, tc := range []struct {
		name  string
		disk  cloudconfig.Disk
		steps string // "op:device:target" joined by spaces
		err   string
	}{
		{"empty disk formatted, mounted, grown", cloudconfig.Disk{Device: "/dev/vdb", Format: true, FSLabel: "data", Mount: "/var/lib/data2", Grow: true},
			"format:/dev/vdb: mount:/dev/vdb:/var/lib/data2 grow:/dev/vdb:/var/lib/data2", ""},
		{"empty disk without format", cloudconfig.Disk{Device: "/dev/vdb", Mount: "/x"}, "", "no file system; set format: true"},
		{"empty disk nothing asked", cloudconfig.Disk{Device: "/dev/vdb"}, "", ""},
		{"ext4 already mounted: only grow", cloudconfig.Disk{Device: "/dev/vdc", Format: true, Mount: "/var/lib/data", Grow: true},
			"grow:/dev/vdc:/var/lib/data", ""},
		{"never format someone's vfat", cloudconfig.Disk{Device: "/dev/vdd", Format: true, Mount: "/x"}, "", "already holds vfat; not formatting"},
		{"force formats vfat with wipe", cloudconfig.Disk{Device: "/dev/vdd", Format: true, Force: true, Mount: "/x"}, "format:/dev/vdd: mount:/dev/vdd:/x", ""},
		{"force keeps ext4 with the label", cloudconfig.Disk{Device: "/dev/vdc", Force: true, FSLabel: "data", Mount: "/var/lib/data"}, "", ""},
		{"force relabels other ext4", cloudconfig.Disk{Device: "/dev/vdi", Force: true, FSLabel: "data", Mount: "/d"}, "format:/dev/vdi: mount:/dev/vdi:/d", ""},
		{"no force: label mismatch kept", cloudconfig.Disk{Device: "/dev/vdi", Format: true, FSLabel: "data", Mount: "/d"}, "mount:/dev/vdi:/d", ""},
		{"partition table not formatted", cloudconfig.Disk{Device: "/dev/vde", Format: true}, "", "already holds gpt"},
		{"partition table not mounted", cloudconfig.Disk{Device: "/dev/vde", Mount: "/x"}, "", "holds gpt, which cannot be mounted"},
		{"ext3 mounts as ext4", cloudconfig.Disk{Device: "/dev/vdf", Format: true, Mount: "/logs", Grow: true}, "mount:/dev/vdf:/logs grow:/dev/vdf:/logs", ""},
		{"by label", cloudconfig.Disk{Label: "cidata", Mount: "/media/seed", Options: []string{"ro"}}, "mount:/dev/sr0:/media/seed", ""},
		{"label not found", cloudconfig.Disk{Label: "nope", Mount: "/x"}, "", "no device has a file system labelled \"nope\""},
		{"label on two devices", cloudconfig.Disk{Label: "twin", Mount: "/x"}, "", "2 devices"},
		{"missing device", cloudconfig.Disk{Device: "/dev/nvme9n1", Format: true}, "", "not found"},
		{"busy mount point", cloudconfig.Disk{Device: "/dev/vdb", Format: true, Mount: "/mnt/busy"}, "format:/dev/vdb:", "already a mount point of tmpfs"},
		{"grow without mount", cloudconfig.Disk{Device: "/dev/vdc", Grow: true}, "", "grow needs mount"},
		{"grow non-ext", cloudconfig.Disk{Label: "cidata", Mount: "/m", Grow: true}, "mount:/dev/sr0:/m", "only ext4 can be grown"},
	} {
		steps, fails := Plan([]cloudconfig.Disk{tc.disk}, st)
		var got []string
		for _, s := range steps {
			got = append(got, string(s.Op)+":"+s.Device+":"+s.Target)
			if s.At != "keso.disks[0]" {
				t.Errorf("%s: step at %q", tc.name, s.At)
			}
		}
		if g := strings.Join(got, " "); g != tc.steps {
			t.Errorf("%s: steps %q, want %q", tc.name, g, tc.steps)
		}
		switch {
		case tc.err == "" && len(fails) > 0:
			t.Errorf("%s: unexpected failure %v", tc.name, fails[0].Err)
		case tc.err != "" && (len(fails) != 1 || !strings.Contains(fails[0].Err.Error(), tc.err) || fails[0].At != "keso.disks[0]"):
			t.Errorf("%s: failures %+v, want one containing %q", tc.name, fails, tc.err)
		}
	}
}

func TestPlanWipeOnlyWhenForcedOverData(t *testing.T) {
	st := State{Devices: map[string]Device{"/dev/a": {Path: "/dev/a"}, "/dev/b": {Path: "/dev/b", Probe: blockdev.Probe{Type: "xfs", Label: ""}}}}
	steps, _ := Plan([]cloudconfig.Disk{{Device: "/dev/a", Format: true, Force: true}, {Device: "/dev/b", Force: true}}, st)
	if len(steps) != 2 || steps[0].Wipe || !steps[1].Wipe {
		t.Errorf("steps %+v: want no wipe on the empty disk, a wipe on the xfs one", steps)
	}
}

func TestMountOptions(t *testing.T) {
	flags, data := MountOptions([]string{"noatime,nodev", "discard", "ro", "commit=60", "defaults"})
	if flags != unix.MS_NOATIME|unix.MS_NODEV|unix.MS_RDONLY || data != "discard,commit=60" {
		t.Errorf("MountOptions = %#x %q", flags, data)
	}
}

func TestParseMountinfo(t *testing.T) {
	mi := "22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n" +
		"40 22 252:16 / /mnt/my\\040disk rw,relatime - ext4 /dev/vdb rw\n" +
		"41 22 0:5 / /dev rw - devtmpfs devtmpfs rw\n"
	got := ParseMountinfo([]byte(mi))
	if len(got) != 3 || got[1] != (Mounted{Dev: "252:16", Target: "/mnt/my disk", FSType: "ext4", Source: "/dev/vdb"}) {
		t.Errorf("ParseMountinfo = %+v", got)
	}
}
