package verity

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: not root; device nodes and device-mapper NOT exercised")
	}
}

// TestBlockNode: linuxDM makes a missing node, keeps a right one, replaces
// a wrong one, and removes only a node for its own device.
func TestBlockNode(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "dm-3")
	var sys linuxDM
	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"make", func() error { return sys.blockNode(p, 254, 3) }},
		{"keep", func() error { return sys.blockNode(p, 254, 3) }},
		{"remove another's: kept", func() error { return sys.removeNode(p, 254, 4) }},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if ok, err := isNode(p, 254, 3); !ok {
			t.Fatalf("%s: %s is not 254:3 (%v)", step.name, p, err)
		}
	}
	if err := sys.blockNode(p, 254, 5); err != nil {
		t.Fatal(err)
	}
	if ok, err := isNode(p, 254, 5); !ok {
		t.Fatalf("stale node not replaced: %v", err)
	}
	if err := sys.removeNode(p, 254, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there: %v", p, err)
	}
	if err := sys.blockNode(filepath.Join(dir, "no", "dm-1"), 254, 1); err == nil || !strings.Contains(err.Error(), "mknod") {
		t.Errorf("node in a missing directory: err = %v, want a mknod error", err)
	}
}

// needDMVerity skips unless this kernel has device-mapper with the verity
// target, loading dm-verity first if it can.
func needDMVerity(t *testing.T) {
	t.Helper()
	needRoot(t)
	out, merr := exec.Command("modprobe", "dm-verity").CombinedOutput()
	if _, err := os.Stat("/dev/mapper/control"); err != nil {
		t.Skipf("SKIP: no /dev/mapper/control (modprobe dm-verity: %v %s); dm-verity NOT exercised in a kernel", merr, bytes.TrimSpace(out))
	}
	if _, err := os.Stat("/sys/module/dm_verity"); err != nil {
		t.Skipf("SKIP: no dm_verity module (modprobe dm-verity: %v %s); dm-verity NOT exercised in a kernel", merr, bytes.TrimSpace(out))
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("SKIP: no losetup (util-linux); dm-verity NOT exercised in a kernel")
	}
}

// loop attaches file to a free loop device until the test ends.
func loop(t *testing.T, file string) string {
	t.Helper()
	out, err := exec.Command("losetup", "-f", "--show", file).CombinedOutput()
	if err != nil {
		t.Skipf("SKIP: losetup -f --show %s: %v %s; dm-verity NOT exercised in a kernel", file, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v %s", dev, err, out)
		}
	})
	return dev
}

// directIO opens path with O_DIRECT and gives a page-aligned buffer, so
// reads and writes bypass the page cache and each 4 KiB block fails or
// succeeds on its own.
func directIO(t *testing.T, path string, flag int) (*os.File, []byte) {
	t.Helper()
	f, err := os.OpenFile(path, flag|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(buf) })
	return f, buf
}

// readBlocks reads every 4 KiB block of dev and returns the data and the
// blocks whose read failed, with their errors.
func readBlocks(t *testing.T, dev string, blocks int) ([]byte, map[int]error) {
	t.Helper()
	f, buf := directIO(t, dev, os.O_RDONLY)
	data := make([]byte, 0, blocks*4096)
	bad := map[int]error{}
	for b := range blocks {
		if _, err := f.ReadAt(buf, int64(b)*4096); err != nil {
			bad[b] = err
			data = append(data, make([]byte, 4096)...)
			continue
		}
		data = append(data, buf...)
	}
	if _, err := f.ReadAt(buf, int64(blocks)*4096); err == nil {
		t.Errorf("%s: a block past the %d data blocks reads", dev, blocks)
	}
	return data, bad
}

// TestOpenOnLoopDevices maps a real dm-verity device over two loop
// devices: it reads back the data, and after one byte of the data changes
// under it, exactly that block fails with EIO.
func TestOpenOnLoopDevices(t *testing.T) {
	needDMVerity(t)
	const blocks = 129*3 + 2 // two levels
	dir := t.TempDir()
	dataPath, hashPath := filepath.Join(dir, "data"), filepath.Join(dir, "hash")
	data := randomData(blocks, 99)
	writeFile(t, dataPath, data)
	hf, err := os.Create(hashPath)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := Build(bytes.NewReader(data), int64(len(data)), hf, 0, Params{}, true)
	if cerr := hf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	dataDev, hashDev := loop(t, dataPath), loop(t, hashPath)
	name := fmt.Sprintf("keso-verity-test-%d", os.Getpid())
	open := func() string {
		t.Helper()
		dev, err := Open(name, dataDev, hashDev, tree)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { Close(name) }) // fails harmlessly once closed
		var st unix.Stat_t
		if err := unix.Stat(dev, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
			t.Fatalf("%s: not a block device (%v)", dev, err)
		}
		return dev
	}

	dev := open()
	got, bad := readBlocks(t, dev, blocks)
	if len(bad) > 0 || !bytes.Equal(got, data) {
		t.Fatalf("%s: %d unreadable blocks %v, data equal: %v", dev, len(bad), bad, bytes.Equal(got, data))
	}
	if err := Close(name); err != nil {
		t.Fatal(err)
	}

	// Flip one byte of block k through the loop device, past its cache.
	const k = blocks / 2
	f, buf := directIO(t, dataDev, os.O_RDWR)
	if _, err := f.ReadAt(buf, k*4096); err != nil {
		t.Fatal(err)
	}
	buf[1234] ^= 0x40
	if _, err := f.WriteAt(buf, k*4096); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	data[k*4096+1234] ^= 0x40

	dev = open()
	got, bad = readBlocks(t, dev, blocks)
	if len(bad) != 1 || !errors.Is(bad[k], syscall.EIO) {
		t.Errorf("unreadable blocks %v, want only block %d, with EIO", bad, k)
	}
	copy(got[k*4096:(k+1)*4096], data[k*4096:]) // the one block that did not read
	if !bytes.Equal(got, data) {
		t.Errorf("the other blocks read back different data")
	}
	if err := Close(name); err != nil {
		t.Fatal(err)
	}
	if _, err := DefaultMapper().do(dmDevStatus, name, 0); !errors.Is(err, syscall.ENXIO) {
		t.Errorf("after Close, DM_DEV_STATUS: err = %v, want ENXIO", err)
	}
	if err := Close(name); err == nil {
		t.Errorf("a second Close succeeds")
	}
}
