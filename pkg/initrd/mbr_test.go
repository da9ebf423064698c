package initrd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/cmdline"
	"github.com/keso-os/keso/pkg/host"
)

// mbrSector builds sector 0 with a disk signature and partitions
// (start, size in sectors; type 0x83, the first 0x0e).
func mbrSector(id uint32, parts ...[2]uint32) []byte {
	s := make([]byte, 512)
	binary.LittleEndian.PutUint32(s[440:], id)
	for i, p := range parts {
		e := s[446+16*i:]
		e[4] = 0x83
		if i == 0 {
			e[4] = 0x0e
		}
		binary.LittleEndian.PutUint32(e[8:], p[0])
		binary.LittleEndian.PutUint32(e[12:], p[1])
	}
	s[510], s[511] = 0x55, 0xaa
	return s
}

// the SD card layout: 1 MiB gap, boot 256 MiB, root 1 GiB x2, state 64 MiB.
var cardParts = [][2]uint32{{2048, 524288}, {526336, 2097152}, {2623488, 2097152}, {4720640, 131072}}

func TestPlanMBRGrow(t *testing.T) {
	sec := mbrSector(0xd4d16b13, cardParts...)
	g, err := PlanMBRGrow(sec, 8388608, 4) // a 4 GiB card
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(g.Partition, g.Start, g.OldEnd, g.NewEnd), "4 4720640 4851711 8388607"; got != want {
		t.Errorf("grow = %s, want %s", got, want)
	}
	if len(g.Writes) != 1 || g.Writes[0].Offset != 0 {
		t.Fatalf("writes = %+v, want one write of sector 0", g.Writes)
	}
	out := g.Writes[0].Data
	if got := binary.LittleEndian.Uint32(out[446+16*3+12:]); got != 8388608-4720640 {
		t.Errorf("new size = %d, want %d", got, 8388608-4720640)
	}
	if id, ok := host.MBRDiskID(out); !ok || id != "d4d16b13" {
		t.Errorf("signature after grow = %q %v, want d4d16b13", id, ok)
	}
	for i := 0; i < 3; i++ { // the other entries are untouched
		if string(out[446+16*i:446+16*i+16]) != string(sec[446+16*i:446+16*i+16]) {
			t.Errorf("entry %d changed", i+1)
		}
	}
	if _, err := PlanMBRGrow(sec, 4851712, 4); !errors.Is(err, ErrGPTNoGrow) {
		t.Errorf("same-size disk: err = %v, want ErrGPTNoGrow", err)
	}
	if _, err := PlanMBRGrow(sec, 8388608, 2); !errors.Is(err, ErrGPTNoGrow) {
		t.Errorf("not the last partition: err = %v, want ErrGPTNoGrow", err)
	}
	if g, err := PlanMBRGrow(sec, 1<<34, 4); err != nil || g.NewEnd-g.Start+1 != 0xffffffff {
		t.Errorf("8 TiB disk: %+v %v, want the 2 TiB MBR limit", g, err)
	}
	prot := mbrSector(0, [2]uint32{1, 100})
	prot[446+4] = 0xee
	if _, ok := host.MBRDiskID(prot); ok {
		t.Errorf("a GPT protective MBR was taken for an MBR disk")
	}
	if _, err := planGrow(prot, 512, 1000, "KESO_STATE", 1); err == nil {
		t.Errorf("planGrow on a protective MBR without GPT: no error")
	}
}

// TestPlanMBRGrowPastTheDisk: a card smaller than the image (the state
// partition starts past its end) is refused, not grown past the disk
// (found by FuzzPlanGrow).
func TestPlanMBRGrowPastTheDisk(t *testing.T) {
	sec := mbrSector(0xd4d16b13, cardParts...)
	g, err := PlanMBRGrow(sec, 4194304, MBRPartState) // a 2 GiB card; the state partition starts at 2.25 GiB
	if err == nil || !strings.Contains(err.Error(), "past the end of the disk") {
		t.Errorf("PlanMBRGrow on a card smaller than the image = %s, %v; want a refusal", planString(g), err)
	}
}

func TestPlanFromCmdlineMBR(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"keso.slot=b keso.mbr=D4D16B13", "disk b d4d16b13 <nil>"},
		{"keso.mbr=0xd4d16b13", "disk  d4d16b13 <nil>"},
		{"keso.slot=a keso.mbr=xyz", `keso.mbr="xyz": want the MBR disk signature as 8 hex digits`},
		{"keso.live keso.mbr=d4d16b13", "keso.mbr names the disk of keso.slot; it does not go with keso.live"},
	} {
		p, err := PlanFromCmdline(cmdline.Parse(tc.line))
		got := fmt.Sprintf("%s %s %s %v", p.Mode, p.Slot, p.MBRDisk, err)
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestStageMBRDisk runs the disk mode against a fake SD card: sysfs with
// real symlinks (so the grow path finds the disk), sector 0 in /dev/mmcblk0.
func TestStageMBRDisk(t *testing.T) {
	for _, slot := range []string{"a", "b"} {
		t.Run(slot, func(t *testing.T) {
			st, fh, log := newStage(t)
			root := st.Root
			dev := filepath.Join(root, "sys/devices/mmc/mmcblk0")
			os.MkdirAll(filepath.Join(root, "sys/class/block"), 0o755)
			os.MkdirAll(filepath.Join(root, "dev"), 0o755)
			write := func(p, s string) { os.MkdirAll(filepath.Dir(p), 0o755); os.WriteFile(p, []byte(s), 0o644) }
			write(filepath.Join(dev, "uevent"), "DEVNAME=mmcblk0\nDEVTYPE=disk\n")
			write(filepath.Join(dev, "size"), "8388608\n") // 4 GiB card
			os.Symlink(dev, filepath.Join(root, "sys/class/block/mmcblk0"))
			for i := 1; i <= 4; i++ {
				n := fmt.Sprintf("mmcblk0p%d", i)
				write(filepath.Join(dev, n, "uevent"), fmt.Sprintf("DEVNAME=%s\nDEVTYPE=partition\nPARTN=%d\n", n, i))
				os.Symlink(filepath.Join(dev, n), filepath.Join(root, "sys/class/block", n))
				write(filepath.Join(root, "dev", n), "")
			}
			// another disk with another signature, and a GPT root B that must not win
			write(filepath.Join(root, "sys/class/block/sda/uevent"), "DEVNAME=sda\nDEVTYPE=disk\n")
			write(filepath.Join(root, "sys/class/block/sda3/uevent"), "DEVNAME=sda3\nDEVTYPE=partition\nPARTN=3\nPARTNAME=KESO_ROOT_B\n")
			os.WriteFile(filepath.Join(root, "dev/sda"), mbrSector(0x11111111, cardParts...), 0o644)
			write(filepath.Join(root, "dev/sda3"), "")
			// the device file is the card's first MiB (growPartition reads that much)
			os.WriteFile(filepath.Join(root, "dev/mmcblk0"), append(mbrSector(0xd4d16b13, cardParts...), make([]byte, 1<<20-512)...), 0o644)

			plan, err := PlanFromCmdline(cmdline.Parse("keso.slot=" + slot + " keso.mbr=d4d16b13"))
			if err != nil {
				t.Fatal(err)
			}
			plan.RootWait = time.Second
			var info Info
			if err := st.FindRoot(context.Background(), plan, &info); err != nil {
				t.Fatalf("FindRoot: %v\n%s", err, log)
			}
			want := map[string]string{"a": "mmcblk0p2", "b": "mmcblk0p3"}[slot]
			if !strings.HasSuffix(info.RootDevice, "/dev/"+want) || info.MBRDisk != "d4d16b13" {
				t.Errorf("root = %s (MBR %q), want /dev/%s on d4d16b13", info.RootDevice, info.MBRDisk, want)
			}
			if err := st.Layers(&info); err != nil {
				t.Fatalf("Layers: %v\n%s", err, log)
			}
			if got := fh.mounts[1]; got != "/dev/mmcblk0p4 /sysroot/keso/state ext4 " {
				t.Errorf("state mount = %q, want /dev/mmcblk0p4 on /sysroot/keso/state", got)
			}
			sec, _ := os.ReadFile(filepath.Join(root, "dev/mmcblk0"))
			if got := binary.LittleEndian.Uint32(sec[446+16*3+12:]); got != 8388608-4720640 {
				t.Errorf("state partition size after boot = %d sectors, want %d (grown to the card's end)\n%s", got, 8388608-4720640, log)
			}
			if fmt.Sprint(info.StatePart) != "[4851711 8388607]" {
				t.Errorf("info.StatePart = %v, want [4851711 8388607]", info.StatePart)
			}
		})
	}
}

func TestStageMBRNotFound(t *testing.T) {
	st, _, _ := newStage(t)
	fakeSys(t, st.Root, map[string]string{"mmcblk0": "DEVNAME=mmcblk0\nDEVTYPE=disk\n"},
		map[string][]byte{"mmcblk0": mbrSector(0x22222222, cardParts...)})
	err := st.FindRoot(context.Background(), Plan{Mode: ModeDisk, Slot: "a", MBRDisk: "d4d16b13", RootWait: time.Second}, &Info{})
	want := "looked for slot a (partition 2 of MBR disk d4d16b13) or GPT partition labelled KESO_ROOT_A"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to contain %q", err, want)
	}
}
