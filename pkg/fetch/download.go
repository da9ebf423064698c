package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Downloader fetches one URL into a file and resumes where an earlier,
// interrupted attempt stopped: the bytes so far are kept in <dst>.part, and
// the next attempt asks for the rest with an HTTP Range request. A server
// that ignores Range (200 instead of 206) or whose file changed (If-Range
// with the ETag or Last-Modified seen first) restarts the download from 0.
// Built for poor links: each attempt that makes progress resets the retry
// budget.
type Downloader struct {
	Client *http.Client
	// Attempts is how many attempts in a row may fail without progress
	// (default 5).
	Attempts int
	// Backoff is the wait after the first failed attempt; it doubles up to
	// 30 s (default 1 s).
	Backoff time.Duration
	// Progress, if set, is told the bytes on disk and the total size.
	Progress Progress
	// Sleep waits between attempts (tests replace it).
	Sleep func(context.Context, time.Duration) error
	// Logf, if set, is told of each resume and each retry.
	Logf func(format string, a ...any)
	// MaxRate, if above 0, bounds the download to that many bytes a
	// second on average, retries and resumes included, so that it never
	// takes the whole of a poor link (keso upgrade --max-rate).
	MaxRate int64
}

// Result says what a download did.
type Result struct {
	Bytes      int64 // size of the finished file
	Downloaded int64 // bytes received over the network by this call
	Resumed    bool  // whether it continued an earlier .part file
	Attempts   int
	// SHA256 is the finished file's digest (lower-case hex), computed as
	// the bytes arrive (and over a resumed .part once), for the caller to
	// check against what it expects.
	SHA256 string
}

// Download fetches url into dst. On success dst is complete and <dst>.part
// is gone; on failure <dst>.part keeps what arrived, for the next call.
func (d *Downloader) Download(ctx context.Context, url, dst string) (Result, error) {
	client := d.Client
	if client == nil {
		client = http.DefaultClient
	}
	attempts := d.Attempts
	if attempts <= 0 {
		attempts = 5
	}
	backoff := d.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	sleep := d.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	part := dst + ".part"
	validator := readValidator(part)
	var res Result
	if fi, err := os.Stat(part); err == nil && fi.Size() > 0 {
		res.Resumed = true
	}
	failures := 0
	wait := backoff
	best := fileSize(part)
	sum := &runningSum{h: sha256.New()}
	lim := newLimiter(d.MaxRate)
	for {
		res.Attempts++
		got, done, v, err := d.attempt(ctx, client, url, part, validator, sum, lim)
		res.Downloaded += got
		if v != "" {
			validator = v
		}
		if err == nil && done {
			fi, err := os.Stat(part)
			if err != nil {
				return res, fmt.Errorf("download %s: %w", url, err)
			}
			if err := os.Rename(part, dst); err != nil {
				return res, fmt.Errorf("download %s: %w", url, err)
			}
			os.Remove(part + ".etag")
			res.Bytes = fi.Size()
			res.SHA256 = hex.EncodeToString(sum.h.Sum(nil))
			return res, nil
		}
		var perm errPermanent
		if errors.As(err, &perm) {
			return res, fmt.Errorf("download %s: %w", url, perm.err)
		}
		// Progress means more of the file on disk than ever before; a server
		// that ignores Range and breaks off at the same place each time does
		// not count.
		if size := fileSize(part); size > best {
			best, failures, wait = size, 0, backoff
		} else {
			failures++
		}
		if failures >= attempts {
			return res, fmt.Errorf("download %s: %d attempts without progress, last: %w (what arrived is kept in %s)", url, failures, err, part)
		}
		d.logf("download %s: attempt %d failed after %d bytes: %v; retrying in %s", url, res.Attempts, fileSize(part), err, wait)
		if err := sleep(ctx, wait); err != nil {
			return res, fmt.Errorf("download %s: %w", url, err)
		}
		wait = min(wait*2, 30*time.Second)
	}
}

func (d *Downloader) logf(format string, a ...any) {
	if d.Logf != nil {
		d.Logf(format, a...)
	}
}

// runningSum is the digest of a .part file's first n bytes.
type runningSum struct {
	h hash.Hash
	n int64
}

func (r *runningSum) Write(b []byte) (int, error) {
	r.h.Write(b)
	r.n += int64(len(b))
	return len(b), nil
}

// sync makes the digest cover exactly f's first have bytes, re-reading them
// when what was hashed and what is on disk differ (a first resume, a
// restart, a short write).
func (r *runningSum) sync(f *os.File, have int64) error {
	if r.n == have {
		return nil
	}
	r.h.Reset()
	r.n = 0
	if _, err := io.Copy(r, io.NewSectionReader(f, 0, have)); err != nil {
		return fmt.Errorf("hash %s: %w", f.Name(), err)
	}
	return nil
}

// attempt makes one request and appends what arrives to part (and to sum).
// done is true when part holds the whole file.
func (d *Downloader) attempt(ctx context.Context, client *http.Client, url, part, validator string, sum *runningSum, lim *rate.Limiter) (got int64, done bool, newValidator string, err error) {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, false, "", errPermanent{err}
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, false, "", errPermanent{err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false, "", errPermanent{err}
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		if validator != "" {
			req.Header.Set("If-Range", validator)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, false, "", err
	}
	defer resp.Body.Close()
	total := int64(-1)
	switch resp.StatusCode {
	case http.StatusOK:
		// Whole file (no Range support, or it changed): start over.
		if err := f.Truncate(0); err != nil {
			return 0, false, "", errPermanent{err}
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, false, "", errPermanent{err}
		}
		have = 0
		total = resp.ContentLength
	case http.StatusPartialContent:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return 0, false, "", fmt.Errorf("server answered range %q for bytes=%d-", resp.Header.Get("Content-Range"), have)
		}
		total = size
		d.logf("download %s: resuming at %d bytes", url, have)
	case http.StatusRequestedRangeNotSatisfiable:
		// We already have everything (or more): check the size the server says.
		if _, size, ok := parseContentRange(resp.Header.Get("Content-Range")); ok && size == have {
			return 0, true, "", sum.sync(f, have)
		}
		if err := f.Truncate(0); err != nil {
			return 0, false, "", errPermanent{err}
		}
		return 0, false, "", fmt.Errorf("server refused range bytes=%d-; starting over", have)
	case http.StatusNotFound, http.StatusForbidden, http.StatusUnauthorized, http.StatusGone:
		return 0, false, "", errPermanent{fmt.Errorf("server answered %s", resp.Status)}
	default:
		return 0, false, "", fmt.Errorf("server answered %s", resp.Status)
	}
	newValidator = resp.Header.Get("ETag")
	if newValidator == "" {
		newValidator = resp.Header.Get("Last-Modified")
	}
	if newValidator != "" && newValidator != validator {
		os.WriteFile(part+".etag", []byte(newValidator), 0o644)
	}
	if err := sum.sync(f, have); err != nil {
		return 0, false, "", errPermanent{err}
	}
	var body io.Reader = resp.Body
	if lim != nil {
		body = &rateReader{ctx: ctx, r: body, lim: lim}
	}
	if d.Progress != nil {
		body = &progressReader{r: body, done: have, total: total, fn: d.Progress}
	}
	out := &syncingWriter{w: f, sync: f.Sync, now: time.Now, last: time.Now()}
	got, err = io.Copy(io.MultiWriter(out, sum), body)
	if err != nil {
		f.Sync()
		return got, false, newValidator, err
	}
	if err := f.Sync(); err != nil {
		return got, false, newValidator, errPermanent{err}
	}
	if total >= 0 && have+got != total {
		return got, false, newValidator, fmt.Errorf("connection closed after %d of %d bytes", have+got, total)
	}
	return got, true, newValidator, nil
}

// parseContentRange reads "bytes START-END/SIZE" (or "bytes */SIZE").
func parseContentRange(s string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, total, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	size, err := strconv.ParseInt(total, 10, 64)
	if err != nil {
		size = -1
	}
	if rng == "*" {
		return 0, size, true
	}
	a, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err = strconv.ParseInt(a, 10, 64)
	return start, size, err == nil
}

func readValidator(part string) string {
	b, err := os.ReadFile(part + ".etag")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Within one attempt, what arrived is made durable every syncBytes or
// syncEvery, whichever comes first: a power cut in a long attempt (hours
// on a dial-up link) loses at most that much, which is fetched again.
const (
	syncBytes = 4 << 20
	syncEvery = 5 * time.Second
)

// syncingWriter writes to w and calls sync once syncBytes were written or
// syncEvery passed since the last call.
type syncingWriter struct {
	w     io.Writer
	sync  func() error
	now   func() time.Time
	since int64
	last  time.Time
}

func (s *syncingWriter) Write(b []byte) (int, error) {
	n, err := s.w.Write(b)
	s.since += int64(n)
	if now := s.now(); err == nil && (s.since >= syncBytes || now.Sub(s.last) >= syncEvery) {
		if err = s.sync(); err == nil {
			s.since, s.last = 0, now
		}
	}
	return n, err
}
