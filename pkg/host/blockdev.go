package host

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// BlockDev is a block device as sysfs describes it.
type BlockDev struct {
	Name      string // kernel name, e.g. vda2
	PartLabel string // GPT partition name (PARTNAME=), if any
	Partition bool
	PartN     int   // partition number (PARTN=), for partitions
	Sectors   int64 // size in 512-byte sectors (0: no medium, or an unattached loop device)
}

// RAM reports a RAM disk (ram*, zram*): never a place for config or data.
func (b BlockDev) RAM() bool {
	return strings.HasPrefix(b.Name, "ram") || strings.HasPrefix(b.Name, "zram")
}

// Disk reports a whole disk that can hold a partition table: not a
// partition, loop device, RAM disk or CD drive.
func (b BlockDev) Disk() bool {
	return !b.Partition && !b.RAM() && !strings.HasPrefix(b.Name, "loop") && !strings.HasPrefix(b.Name, "sr")
}

// ScanBlock lists the block devices under root/sys/class/block (root is
// "/" on a device), sorted by name, from their uevent and size files: the
// one reader of them (the initrd, datasources, data disks, keso install
// and the Pi card's partitions all scan with it).
func ScanBlock(root string) ([]BlockDev, error) {
	dir := filepath.Join(root, "sys/class/block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list block devices in %s: %w", dir, err)
	}
	var out []BlockDev
	for _, e := range ents {
		b := BlockDev{Name: e.Name()}
		if sz, err := os.ReadFile(filepath.Join(dir, e.Name(), "size")); err == nil {
			b.Sectors, _ = strconv.ParseInt(strings.TrimSpace(string(sz)), 10, 64)
		}
		if data, err := os.ReadFile(filepath.Join(dir, e.Name(), "uevent")); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				k, v, _ := strings.Cut(sc.Text(), "=")
				switch k {
				case "DEVNAME":
					b.Name = v
				case "PARTNAME":
					b.PartLabel = v
				case "DEVTYPE":
					b.Partition = v == "partition"
				case "PARTN":
					b.PartN, _ = strconv.Atoi(v)
				}
			}
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
