package upgrade

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
)

// ImageInfo is what an upgrade image says about itself.
type ImageInfo struct {
	Version string // VERSION_ID from /etc/os-release
	Kernel  []byte // /boot/vmlinuz
	Initrd  []byte // /boot/initrd
	// Cmdline is the release's kernel command line
	// (/usr/share/keso/install/cmdline), "" when the image has none.
	Cmdline string
}

// ReadImage reads the version, kernel and initrd out of a root squashfs
// (the upgrade artifact) without mounting it.
func ReadImage(r io.ReaderAt, size int64) (ImageInfo, error) {
	return readImageFiles(r, size, true)
}

// ReadVersion reads only the version out of a root squashfs.
func ReadVersion(r io.ReaderAt, size int64) (string, error) {
	info, err := readImageFiles(r, size, false)
	return info.Version, err
}

// readImageFiles reads the version, and the kernel, initrd and command
// line when boot is set.
func readImageFiles(r io.ReaderAt, size int64, boot bool) (info ImageInfo, err error) {
	defer func() {
		// go-diskfs panics on some malformed images (slice bounds in
		// its metadata reader); a bad image must be refused, not crash
		// `keso upgrade`.
		if p := recover(); p != nil {
			info, err = ImageInfo{}, fmt.Errorf("read image: malformed squashfs: %v", p)
		}
	}()
	fs, err := squashfs.Read(file.New(readerAtFile{r, size}, true), size, 0, 0)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("read image: not a squashfs root: %w", err)
	}
	read := func(p string) ([]byte, error) {
		f, err := fs.OpenFile(p, os.O_RDONLY)
		if err != nil {
			return nil, fmt.Errorf("read image: /%s: %w", p, err)
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("read image: /%s: %w", p, err)
		}
		return b, nil
	}
	osr, err := read("etc/os-release")
	if err != nil {
		return info, err
	}
	info.Version = OSReleaseField(osr, "VERSION_ID")
	if info.Version == "" {
		return info, fmt.Errorf("read image: /etc/os-release has no VERSION_ID")
	}
	if !boot {
		return info, nil
	}
	if info.Kernel, err = read("boot/vmlinuz"); err != nil {
		return info, err
	}
	if info.Initrd, err = read("boot/initrd"); err != nil {
		return info, err
	}
	if b, err := read("usr/share/keso/install/cmdline"); err == nil {
		info.Cmdline = strings.Join(strings.Fields(string(b)), " ")
	}
	return info, nil
}

// OSReleaseField returns a field of an os-release file, unquoted.
func OSReleaseField(data []byte, key string) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if ok && k == key {
			if uq, err := strconv.Unquote(v); err == nil {
				return uq
			}
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// CompareVersions orders keso versions: dot-separated numbers compare
// numerically ("1.10.0" > "1.9.2"), a pre-release ("1.2.0-rc1") sorts
// before its release, and other text compares as strings.
func CompareVersions(a, b string) int {
	ra, pa, _ := strings.Cut(strings.TrimPrefix(a, "v"), "-")
	rb, pb, _ := strings.Cut(strings.TrimPrefix(b, "v"), "-")
	fa, fb := strings.Split(ra, "."), strings.Split(rb, ".")
	for i := 0; i < max(len(fa), len(fb)); i++ {
		var x, y string
		if i < len(fa) {
			x = fa[i]
		}
		if i < len(fb) {
			y = fb[i]
		}
		if c := compareField(x, y); c != 0 {
			return c
		}
	}
	switch {
	case pa == pb:
		return 0
	case pa == "":
		return 1
	case pb == "":
		return -1
	}
	return compareField(pa, pb)
}

func compareField(x, y string) int {
	nx, ex := strconv.Atoi(x)
	ny, ey := strconv.Atoi(y)
	if x == "" {
		nx, ex = 0, nil
	}
	if y == "" {
		ny, ey = 0, nil
	}
	if ex == nil && ey == nil {
		switch {
		case nx < ny:
			return -1
		case nx > ny:
			return 1
		}
		return 0
	}
	// Mixed: compare the leading numbers, then the text.
	lx, ly := leadingNumber(x), leadingNumber(y)
	if lx != ly {
		if lx < ly {
			return -1
		}
		return 1
	}
	return strings.Compare(x, y)
}

func leadingNumber(s string) int {
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsDigit(r) })
	if i < 0 {
		i = len(s)
	}
	n, _ := strconv.Atoi(s[:i])
	return n
}

// readerAtFile adapts an io.ReaderAt to the fs.File go-diskfs wants.
type readerAtFile struct {
	r    io.ReaderAt
	size int64
}

func (f readerAtFile) ReadAt(p []byte, off int64) (int, error) { return f.r.ReadAt(p, off) }
func (f readerAtFile) Read([]byte) (int, error)                { return 0, io.EOF }
func (f readerAtFile) Seek(off int64, whence int) (int64, error) {
	return 0, fmt.Errorf("seek not supported")
}
func (f readerAtFile) Close() error               { return nil }
func (f readerAtFile) Stat() (os.FileInfo, error) { return nil, fmt.Errorf("stat not supported") }
