package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// slotImage writes size random bytes standing in for a squashfs.
func slotImage(t *testing.T, size int) string {
	t.Helper()
	b := make([]byte, size)
	rand.New(rand.NewSource(int64(size))).Read(b)
	p := filepath.Join(t.TempDir(), "root.squashfs")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSealFile(t *testing.T) {
	for _, size := range []int{4096, 4097, 3 << 20, 3<<20 + 100} {
		src := slotImage(t, size)
		dst := filepath.Join(t.TempDir(), "slot.img")
		rec, err := SealFile(src, dst, "a")
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(dst)
		if got, want := fi.Size(), SlotBytes(int64(size)); got != want {
			t.Errorf("size %d: slot image is %d bytes, SlotBytes says %d", size, got, want)
		}
		if rec.HashOffset != SlotHashOffset(int64(size)) || rec.HashOffset%4096 != 0 || rec.ImageSize != int64(size) {
			t.Errorf("size %d: record %+v", size, rec)
		}
		// Deterministic: sealing again gives the same record.
		again, err := SealFile(src, filepath.Join(t.TempDir(), "slot.img"), "a")
		if err != nil || again != rec {
			t.Errorf("size %d: second seal %+v (%v), want %+v", size, again, err, rec)
		}
		// The record's tree checks the slot, and finds a flipped byte.
		tr, err := rec.Tree()
		if err != nil {
			t.Fatal(err)
		}
		f, _ := os.OpenFile(dst, os.O_RDWR, 0)
		if err := Verify(f, f, tr); err != nil {
			t.Errorf("size %d: Verify of the sealed slot: %v", size, err)
		}
		off := int64(size / 2)
		b := []byte{0}
		f.ReadAt(b, off)
		f.WriteAt([]byte{b[0] ^ 0x40}, off)
		var ce *CorruptionError
		if err := Verify(f, f, tr); !errors.As(err, &ce) || !ce.Data || ce.Block != uint64(off/4096) {
			t.Errorf("size %d: Verify after a flip at %d: %v, want data block %d", size, off, err, off/4096)
		}
		f.Close()
		if js, _ := json.Marshal(rec); true {
			if back, err := ParseRecord(js); err != nil || back != rec {
				t.Errorf("ParseRecord(%s) = %+v, %v", js, back, err)
			}
		}
	}
}

// TestSealFileVeritysetup: the reference tool accepts a sealed slot with
// the record's root hash at the record's offset (the superblock gives it
// the rest).
func TestSealFileVeritysetup(t *testing.T) {
	vs := veritysetup(t)
	src := slotImage(t, 1<<20+512)
	dst := filepath.Join(t.TempDir(), "slot.img")
	rec, err := SealFile(src, dst, "b")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(vs, "verify", dst, dst, rec.RootHash, fmt.Sprintf("--hash-offset=%d", rec.HashOffset)).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup verify: %v\n%s", err, out)
	}
}

func TestParseRecordRejects(t *testing.T) {
	good := Record{Slot: "a", ImageSize: 8192, RootHash: strings.Repeat("ab", 32), Salt: "00", DataBlocks: 2, HashOffset: 8192}
	for _, tc := range []struct {
		name string
		edit func(r *Record)
	}{
		{"slot", func(r *Record) { r.Slot = "c" }},
		{"offset", func(r *Record) { r.HashOffset = 4096 }},
		{"blocks", func(r *Record) { r.DataBlocks = 0 }},
		{"size", func(r *Record) { r.ImageSize = 100 }},
		{"root", func(r *Record) { r.RootHash = "abc" }},
		{"salt", func(r *Record) { r.Salt = "zz" }},
	} {
		r := good
		tc.edit(&r)
		js, _ := json.Marshal(r)
		if _, err := ParseRecord(js); err == nil {
			t.Errorf("%s: ParseRecord(%s) accepted it", tc.name, js)
		}
	}
	js, _ := json.Marshal(good)
	if _, err := ParseRecord(js); err != nil {
		t.Errorf("good record: %v", err)
	}
	if _, err := ParseRecord([]byte("{")); err == nil {
		t.Error("ParseRecord accepted broken JSON")
	}
}

// TestAppendToInitrd: the record archive follows the initrd 4-byte
// aligned, and cpio (the real tool, if present) lists and extracts it.
func TestAppendToInitrd(t *testing.T) {
	initrd := bytes.Repeat([]byte{0x1f, 0x8b, 7}, 333) // 999 bytes: not aligned
	rec := Record{Slot: "a", ImageSize: 8192, RootHash: strings.Repeat("ab", 32), Salt: "00", DataBlocks: 2, HashOffset: 8192}
	out, err := AppendToInitrd(initrd, rec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, initrd) {
		t.Fatal("the initrd is not kept in front")
	}
	start := bytes.Index(out[len(initrd):], []byte("070701")) + len(initrd)
	if start%4 != 0 || start-len(initrd) > 3 {
		t.Errorf("archive starts at %d after a %d-byte initrd, want the next multiple of 4", start, len(initrd))
	}
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("SKIP: cpio not installed; the archive was not extracted with the real tool")
	}
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-idm", "--quiet")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(out[start:])
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v\n%s", err, b)
	}
	b, err := os.ReadFile(filepath.Join(dir, RecordPath))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseRecord(b); err != nil || got != rec {
		t.Errorf("extracted record %+v (%v), want %+v", got, err, rec)
	}
}

func TestSlotParamsDiffer(t *testing.T) {
	a, b := sha256.Sum256([]byte("1")), sha256.Sum256([]byte("2"))
	if bytes.Equal(slotParams(a[:], 4096).Salt, slotParams(b[:], 4096).Salt) {
		t.Error("two images got the same salt")
	}
}
