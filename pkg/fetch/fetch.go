// Package fetch keeps a content-addressed cache of build inputs and verifies
// them by sha256. Inputs come from a local file or an http(s) URL; an entry is
// stored as <dir>/sha256/<hex> and is never fetched twice.
//
// Side effects: the cache's files (written to a temporary name, then
// renamed) and the Downloader's destination file.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Progress is told how many bytes of a download have arrived (total is -1
// when the server did not say).
type Progress func(done, total int64)

// Cache is a content-addressed store in Dir.
type Cache struct {
	Dir      string
	Client   *http.Client
	Progress Progress
}

// DefaultDir is $KESO_CACHE, else $XDG_CACHE_HOME/keso, else ~/.cache/keso.
func DefaultDir() string {
	if d := os.Getenv("KESO_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "keso")
	}
	return filepath.Join(os.TempDir(), "keso-cache")
}

// Path is where the blob with the given sha256 lives (whether or not it exists).
func (c *Cache) Path(sum string) string {
	return filepath.Join(c.Dir, "sha256", strings.ToLower(sum))
}

// ErrMismatch is wrapped by errors about content whose sha256 is not the expected one.
var ErrMismatch = errors.New("sha256 mismatch")

// Get returns the path of a cached copy of src (a local path or http(s) URL)
// whose sha256 is want. With want empty, src must be a local file: it is
// hashed and added. A cached blob is returned without touching src.
func (c *Cache) Get(ctx context.Context, src, want string) (string, error) {
	want = strings.ToLower(want)
	if want != "" {
		if len(want) != 64 {
			return "", fmt.Errorf("fetch %s: sha256 %q is not 64 hex digits", src, want)
		}
		p := c.Path(want)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, "sha256"), 0o755); err != nil {
		return "", fmt.Errorf("fetch: create cache %s: %w", c.Dir, err)
	}
	isURL := strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://")
	if isURL && want == "" {
		return "", fmt.Errorf("fetch %s: no sha256 given; downloads must be pinned", src)
	}
	tmp, err := os.CreateTemp(filepath.Join(c.Dir, "sha256"), ".part-*")
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", src, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	w := io.MultiWriter(tmp, h)
	if isURL {
		err = c.download(ctx, src, w)
	} else {
		err = copyFile(src, w)
	}
	if err != nil {
		return "", err
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		return "", fmt.Errorf("fetch %s: got sha256 %s, want %s: %w", src, got, want, ErrMismatch)
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("fetch %s: sync: %w", src, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("fetch %s: %w", src, err)
	}
	p := c.Path(got)
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fmt.Errorf("fetch %s: store %s: %w", src, p, err)
	}
	return p, nil
}

func copyFile(src string, w io.Writer) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", src, err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("fetch: read %s: %w", src, err)
	}
	return nil
}

func (c *Cache) download(ctx context.Context, url string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	cl := c.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: HTTP %s", url, resp.Status)
	}
	var r io.Reader = resp.Body
	if c.Progress != nil {
		r = &progressReader{r: r, total: resp.ContentLength, fn: c.Progress}
	}
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	return nil
}

type progressReader struct {
	r     io.Reader
	done  int64
	total int64
	fn    Progress
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	p.fn(p.done, p.total)
	return n, err
}

// SumFile returns the hex sha256 of a file.
func SumFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("sha256 %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("sha256 %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
