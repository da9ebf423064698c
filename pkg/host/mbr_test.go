package host

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindMBRPartition(t *testing.T) {
	root := t.TempDir()
	w := func(p string, b []byte) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), b, 0o644)
	}
	sector := func(id uint32) []byte {
		s := make([]byte, 512)
		binary.LittleEndian.PutUint32(s[440:], id)
		s[446+4] = 0x0e
		s[510], s[511] = 0x55, 0xaa
		return s
	}
	w("sys/class/block/mmcblk0/uevent", []byte("DEVNAME=mmcblk0\nDEVTYPE=disk\n"))
	w("dev/mmcblk0", sector(0xd4d16b13))
	w("sys/class/block/sda/uevent", []byte("DEVNAME=sda\nDEVTYPE=disk\n"))
	w("dev/sda", sector(0x11111111))
	for _, p := range []string{"mmcblk0p1:1", "mmcblk0p2:2", "mmcblk0p3:3", "sda2:2"} {
		name, n, _ := strings.Cut(p, ":")
		w("sys/class/block/"+name+"/uevent", []byte("DEVNAME="+name+"\nDEVTYPE=partition\nPARTN="+n+"\n"))
	}
	for _, tc := range []struct {
		id   string
		n    int
		want string
	}{
		{"d4d16b13", 2, "/dev/mmcblk0p2"},
		{"d4d16b13", 1, "/dev/mmcblk0p1"},
		{"11111111", 2, "/dev/sda2"},
		{"d4d16b13", 4, "error: has the signature but no partition 4"},
		{"22222222", 2, "error: no disk has that MBR signature"},
	} {
		got, err := FindMBRPartition(root, tc.id, tc.n)
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(tc.want, "error: ") && got != tc.want || strings.HasPrefix(tc.want, "error: ") && !strings.Contains(got, strings.TrimPrefix(tc.want, "error: ")) {
			t.Errorf("FindMBRPartition(%s, %d) = %q, want %q", tc.id, tc.n, got, tc.want)
		}
	}
}
