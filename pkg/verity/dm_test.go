package verity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeDM is a device-mapper in memory: it records the commands and
// answers as the kernel would for one device at 254:minor.
type fakeDM struct {
	calls   []string
	fail    map[dmCmd]error
	busy    int // DM_DEV_REMOVE fails with EBUSY this many times
	minor   uint32
	nodes   map[string][2]uint32
	table   []byte
	created map[string]bool
}

func newFakeDM() *fakeDM {
	return &fakeDM{fail: map[dmCmd]error{}, minor: 300, nodes: map[string][2]uint32{}, created: map[string]bool{}}
}

func (f *fakeDM) ioctl(cmd dmCmd, buf []byte) error {
	h := decodeDM(buf)
	f.calls = append(f.calls, fmt.Sprintf("%s %s flags=%#x targets=%d", cmd, h.Name, h.Flags, h.TargetCount))
	if err := f.fail[cmd]; err != nil {
		return err
	}
	ne := binary.NativeEndian
	switch cmd {
	case dmVersion:
		ne.PutUint32(buf[0:], 4)
		ne.PutUint32(buf[4:], 48)
	case dmDevCreate:
		if f.created[h.Name] {
			return syscall.EBUSY
		}
		f.created[h.Name] = true
	case dmTableLoad:
		f.table = bytes.Clone(buf[h.DataStart:h.DataSize])
	case dmDevRemove:
		if f.busy > 0 {
			f.busy--
			return syscall.EBUSY
		}
		delete(f.created, h.Name)
	}
	if !f.created[h.Name] && cmd != dmVersion && cmd != dmDevRemove {
		return syscall.ENXIO
	}
	// huge_encode_dev(254:minor)
	ne.PutUint64(buf[offDMDev:], uint64(f.minor&0xff)|254<<8|uint64(f.minor&^0xff)<<12)
	return nil
}

func (f *fakeDM) blockNode(path string, major, minor uint32) error {
	f.calls = append(f.calls, fmt.Sprintf("mknod %s %d:%d", path, major, minor))
	f.nodes[path] = [2]uint32{major, minor}
	return nil
}

func (f *fakeDM) removeNode(path string, major, minor uint32) error {
	f.calls = append(f.calls, fmt.Sprintf("rmnode %s %d:%d", path, major, minor))
	delete(f.nodes, path)
	return nil
}

func (f *fakeDM) sleep(time.Duration) {}

func testTree(t *testing.T) *Tree {
	t.Helper()
	data := patternData(3)
	tree, err := Build(bytes.NewReader(data), int64(len(data)), &memWriterAt{}, 0, Params{Salt: kesoSalt}, false)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func TestMapperCreateRemove(t *testing.T) {
	f := newFakeDM()
	m := &Mapper{sys: f, control: "/dev/mapper/control", devDir: "/dev"}
	tg, err := testTree(t).Target("/dev/loop0", "/dev/loop1")
	if err != nil {
		t.Fatal(err)
	}
	path, err := m.Create("keso-root", tg)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/dev/dm-300"; path != want {
		t.Errorf("path = %s, want %s", path, want)
	}
	if err := m.Remove("keso-root"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"DM_VERSION  flags=0x0 targets=0",
		"DM_DEV_CREATE keso-root flags=0x0 targets=0",
		"DM_TABLE_LOAD keso-root flags=0x1 targets=1",
		"DM_DEV_SUSPEND keso-root flags=0x0 targets=0",
		"mknod /dev/dm-300 254:300",
		"DM_DEV_STATUS keso-root flags=0x0 targets=0",
		"DM_DEV_REMOVE keso-root flags=0x0 targets=0",
		"rmnode /dev/dm-300 254:300",
	}
	if got := strings.Join(f.calls, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	// The table as the kernel reads it: one spec, the parameters after it,
	// NUL-terminated, the whole padded to 8 bytes.
	ne := binary.NativeEndian
	spec := f.table
	if got, want := ne.Uint64(spec[0:]), uint64(0); got != want {
		t.Errorf("sector_start = %d, want %d", got, want)
	}
	if got, want := ne.Uint64(spec[8:]), uint64(24); got != want {
		t.Errorf("length = %d, want %d", got, want)
	}
	if got, want := cString(spec[24:40]), "verity"; got != want {
		t.Errorf("target_type = %q, want %q", got, want)
	}
	next := ne.Uint32(spec[20:])
	if got, want := cString(spec[40:next]), tg.Params; got != want {
		t.Errorf("params = %q, want %q", got, want)
	}
	if next%8 != 0 || int(next) < 40+len(tg.Params)+1 {
		t.Errorf("next = %d, want 8-aligned and past the NUL of %d bytes of parameters", next, len(tg.Params))
	}
}

func TestMapperFailures(t *testing.T) {
	tg := Target{Length: 8, Type: "verity", Params: "1 a b"}
	for _, tc := range []struct {
		name      string
		fail      dmCmd
		err       error
		busy      int
		wantErr   string
		wantCalls []string // the calls after DM_VERSION and DM_DEV_CREATE
	}{
		{"table load refused", dmTableLoad, syscall.EINVAL, 0, "DM_TABLE_LOAD \"v\" on /dev/mapper/control: invalid argument",
			[]string{"DM_TABLE_LOAD v flags=0x1 targets=1", "DM_DEV_REMOVE v flags=0x0 targets=0"}},
		{"resume refused, remove busy twice", dmDevSuspend, syscall.EIO, 2, "DM_DEV_SUSPEND \"v\" on /dev/mapper/control: input/output error",
			[]string{"DM_TABLE_LOAD v flags=0x1 targets=1", "DM_DEV_SUSPEND v flags=0x0 targets=0",
				"DM_DEV_REMOVE v flags=0x0 targets=0", "DM_DEV_REMOVE v flags=0x0 targets=0", "DM_DEV_REMOVE v flags=0x0 targets=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDM()
			f.fail[tc.fail] = tc.err
			f.busy = tc.busy
			m := &Mapper{sys: f, control: "/dev/mapper/control", devDir: "/dev"}
			_, err := m.Create("v", tg)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			if got, want := strings.Join(f.calls[2:], "\n"), strings.Join(tc.wantCalls, "\n"); got != want {
				t.Errorf("calls:\n%s\nwant:\n%s", got, want)
			}
			if len(f.created) != 0 {
				t.Errorf("left behind: %v", f.created)
			}
		})
	}

	f := newFakeDM()
	f.busy = removeTries
	m := &Mapper{sys: f, control: "/dev/mapper/control", devDir: "/dev"}
	if _, err := m.Create("v", tg); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove("v"); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("Remove of a busy device: err = %v, want EBUSY", err)
	}
	for _, name := range []string{"", "a/b", "..", strings.Repeat("n", 128)} {
		if _, err := m.Create(name, tg); !errors.Is(err, ErrParams) {
			t.Errorf("Create(%q): err = %v, want ErrParams", name, err)
		}
	}
	if _, err := m.Create("w", Target{Type: "a-type-name-too-long"}); !errors.Is(err, ErrParams) {
		t.Errorf("long target type: err = %v, want ErrParams", err)
	}
}

func TestDevDecode(t *testing.T) {
	for _, tc := range []struct {
		dev          uint64
		major, minor uint32
	}{
		{0xfe00, 254, 0},
		{0xfe05, 254, 5},
		{0x10fe2c, 254, 300}, // minor 0x12c: 0x2c in bits 0-7, 0x100 shifted up 12
		{259<<8 | 0x34 | 0x12<<20, 259, 0x1234},
	} {
		h := dmHeader{Dev: tc.dev}
		if h.Major() != tc.major || h.Minor() != tc.minor {
			t.Errorf("dev %#x: %d:%d, want %d:%d", tc.dev, h.Major(), h.Minor(), tc.major, tc.minor)
		}
	}
}

// TestIoctlLayout compiles a few lines of C against the kernel's
// linux/dm-ioctl.h and compares sizes, offsets and ioctl numbers with the
// constants in dm.go.
func TestIoctlLayout(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("SKIP: no C compiler; ioctl layout NOT checked against linux/dm-ioctl.h")
	}
	if _, err := os.Stat("/usr/include/linux/dm-ioctl.h"); err != nil {
		t.Skip("SKIP: no /usr/include/linux/dm-ioctl.h (Debian: linux-libc-dev); ioctl layout NOT checked")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "layout.c")
	if err := os.WriteFile(src, []byte(`#include <stdio.h>
#include <stddef.h>
#include <linux/ioctl.h>
#include <linux/dm-ioctl.h>
int main(void) {
	printf("%zu %zu\n", sizeof(struct dm_ioctl), sizeof(struct dm_target_spec));
	printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\n",
		offsetof(struct dm_ioctl, version), offsetof(struct dm_ioctl, data_size),
		offsetof(struct dm_ioctl, data_start), offsetof(struct dm_ioctl, target_count),
		offsetof(struct dm_ioctl, open_count), offsetof(struct dm_ioctl, flags),
		offsetof(struct dm_ioctl, event_nr), offsetof(struct dm_ioctl, dev),
		offsetof(struct dm_ioctl, name), offsetof(struct dm_ioctl, uuid));
	printf("%zu %zu %zu %zu\n", offsetof(struct dm_target_spec, length),
		offsetof(struct dm_target_spec, status), offsetof(struct dm_target_spec, next),
		offsetof(struct dm_target_spec, target_type));
	printf("%d %d %d %d\n", DM_NAME_LEN, DM_UUID_LEN, DM_MAX_TYPE_NAME, DM_VERSION_MAJOR);
	printf("%#lx %#lx %#lx %#lx %#lx %#lx\n", (unsigned long)DM_VERSION, (unsigned long)DM_DEV_CREATE,
		(unsigned long)DM_DEV_REMOVE, (unsigned long)DM_DEV_SUSPEND, (unsigned long)DM_DEV_STATUS,
		(unsigned long)DM_TABLE_LOAD);
	printf("%#x %#x %#x\n", DM_READONLY_FLAG, DM_SUSPEND_FLAG, DM_BUFFER_FULL_FLAG);
	return 0;
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "layout")
	if out, err := exec.Command(cc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d %d\n%d %d %d %d %d %d %d %d %d %d\n%d %d %d %d\n%d %d %d %d\n%#x %#x %#x %#x %#x %#x\n%#x %#x %#x\n",
		dmIoctlSize, dmSpecSize,
		offDMVersion, offDMDataSize, offDMDataStart, offDMTargetCount, offDMOpenCount, offDMFlags, offDMEventNr, offDMDev, offDMName, offDMUUID,
		8, 16, 20, 24,
		dmNameLen, dmUUIDLen, dmTypeLen, dmVersionMajor,
		dmVersion.ioctlNumber(), dmDevCreate.ioctlNumber(), dmDevRemove.ioctlNumber(), dmDevSuspend.ioctlNumber(), dmDevStatus.ioctlNumber(), dmTableLoad.ioctlNumber(),
		dmReadonlyFlag, dmSuspendFlag, dmBufferFullFlag)
	if got := string(out); got != want {
		t.Errorf("linux/dm-ioctl.h says\n%s\ndm.go says\n%s", got, want)
	}
}
