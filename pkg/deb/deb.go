// Package deb unpacks Debian binary packages in Go: a .deb is an ar archive
// holding debian-binary, control.tar.* and data.tar.* (xz, gzip or none).
// Nothing is installed and no maintainer script runs; only files are written.
package deb

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ulikunitz/xz"
)

// member finds the ar member whose name starts with prefix and returns a reader
// over its decompressed contents, plus a closer for the file.
func member(debPath, prefix string) (io.Reader, io.Closer, error) {
	f, err := os.Open(debPath)
	if err != nil {
		return nil, nil, fmt.Errorf("open deb %s: %w", debPath, err)
	}
	br := bufio.NewReaderSize(f, 1<<20)
	magic := make([]byte, 8)
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != "!<arch>\n" {
		f.Close()
		return nil, nil, fmt.Errorf("deb %s: not an ar archive (want a Debian .deb package)", debPath)
	}
	hdr := make([]byte, 60)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("deb %s: no %s* member: %w", debPath, prefix, err)
		}
		name := strings.TrimRight(strings.TrimSpace(string(hdr[0:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("deb %s: bad ar member size for %q", debPath, name)
		}
		if strings.HasPrefix(name, prefix) {
			r := io.LimitReader(br, size)
			dr, err := decompress(name, r)
			if err != nil {
				f.Close()
				return nil, nil, fmt.Errorf("deb %s: %s: %w", debPath, name, err)
			}
			return dr, f, nil
		}
		skip := size + size%2
		if _, err := br.Discard(int(skip)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("deb %s: skip %s: %w", debPath, name, err)
		}
	}
}

func decompress(name string, r io.Reader) (io.Reader, error) {
	switch {
	case strings.HasSuffix(name, ".xz"):
		c := xz.ReaderConfig{SingleStream: false}
		return c.NewReader(r)
	case strings.HasSuffix(name, ".gz"):
		return gzip.NewReader(r)
	case strings.HasSuffix(name, ".tar"):
		return r, nil
	}
	return nil, fmt.Errorf("unsupported compression (want .tar, .tar.xz or .tar.gz; zstd debs are not supported yet)")
}

// Control returns the fields of the package's control file (Package, Version,
// Architecture, Depends, …).
func Control(debPath string) (map[string]string, error) {
	r, c, err := member(debPath, "control.tar")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("deb %s: no control file: %w", debPath, err)
		}
		if path.Clean(h.Name) != "control" {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("deb %s: read control: %w", debPath, err)
		}
		return parseControl(b), nil
	}
}

func parseControl(b []byte) map[string]string {
	m := map[string]string{}
	var last string
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && last != "" {
			m[last] += "\n" + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = k
		m[k] = strings.TrimSpace(v)
	}
	return m
}

// Extract writes the package's data files below dest. keep, when non-nil,
// selects which archive paths (relative, "usr/lib/…" form) are written;
// parent directories are created as needed. File modes are kept, owners and
// times are not (the builder sets its own). Paths escaping dest are refused.
func Extract(debPath, dest string, keep func(name string) bool) error {
	r, c, err := member(debPath, "data.tar")
	if err != nil {
		return err
	}
	defer c.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("deb %s: read data: %w", debPath, err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if name == "" || (keep != nil && !keep(name)) {
			continue
		}
		target := filepath.Join(dest, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("deb %s: mkdir %s: %w", debPath, target, err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fmt.Errorf("deb %s: mkdir %s: %w", debPath, filepath.Dir(target), err)
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777|0o200)
			if err != nil {
				return fmt.Errorf("deb %s: create %s: %w", debPath, target, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("deb %s: write %s: %w", debPath, target, err)
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fmt.Errorf("deb %s: mkdir %s: %w", debPath, filepath.Dir(target), err)
			}
			os.Remove(target)
			if err := os.Symlink(h.Linkname, target); err != nil {
				return fmt.Errorf("deb %s: symlink %s: %w", debPath, target, err)
			}
		case tar.TypeLink:
			old := filepath.Join(dest, filepath.FromSlash(strings.TrimPrefix(path.Clean("/"+h.Linkname), "/")))
			os.Remove(target)
			if err := os.Link(old, target); err != nil {
				return fmt.Errorf("deb %s: link %s: %w", debPath, target, err)
			}
		}
	}
}

// CompareVersions compares two Debian version strings (epoch:upstream-revision)
// the way dpkg does: negative when a < b, 0 when equal, positive when a > b.
func CompareVersions(a, b string) int {
	ea, ra := splitEpoch(a)
	eb, rb := splitEpoch(b)
	if ea != eb {
		if ea < eb {
			return -1
		}
		return 1
	}
	ua, da := splitRevision(ra)
	ub, db := splitRevision(rb)
	if c := cmpPart(ua, ub); c != 0 {
		return c
	}
	return cmpPart(da, db)
}

func splitEpoch(v string) (int, string) {
	if e, rest, ok := strings.Cut(v, ":"); ok {
		n, _ := strconv.Atoi(e)
		return n, rest
	}
	return 0, v
}

func splitRevision(v string) (string, string) {
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return v[:i], v[i+1:]
	}
	return v, ""
}

func order(c byte) int {
	switch {
	case c == '~':
		return -1
	case c >= '0' && c <= '9':
		return 0
	case c == 0:
		return 0
	case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		return int(c)
	}
	return int(c) + 256
}

func cmpPart(a, b string) int {
	for a != "" || b != "" {
		// non-digit prefix
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			var ca, cb byte
			if a != "" && !isDigit(a[0]) {
				ca = a[0]
			}
			if b != "" && !isDigit(b[0]) {
				cb = b[0]
			}
			if oa, ob := order(ca), order(cb); oa != ob {
				return oa - ob
			}
			if ca != 0 {
				a = a[1:]
			}
			if cb != 0 {
				b = b[1:]
			}
		}
		var na, nb string
		na, a = digits(a)
		nb, b = digits(b)
		na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
		if len(na) != len(nb) {
			return len(na) - len(nb)
		}
		if c := strings.Compare(na, nb); c != 0 {
			return c
		}
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digits(s string) (string, string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// FileName parses apt's "<name>_<version>_<arch>.deb" file naming (with the
// epoch colon written as %3a).
func FileName(base string) (name, version, arch string, ok bool) {
	base = strings.TrimSuffix(base, ".deb")
	parts := strings.Split(base, "_")
	if len(parts) != 3 {
		return "", "", "", false
	}
	return parts[0], strings.ReplaceAll(parts[1], "%3a", ":"), parts[2], true
}
