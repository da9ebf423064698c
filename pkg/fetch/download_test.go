package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// flakyServer serves content with Range support, but breaks the connection
// after cut bytes of each of the first breaks responses.
func flakyServer(t *testing.T, content []byte, cut int64, breaks int32, honourRange bool) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if !honourRange {
			r.Header.Del("Range")
		}
		w.Header().Set("ETag", `"v1"`)
		if i > breaks {
			http.ServeContent(w, r, "image", time.Unix(0, 0), bytes.NewReader(content))
			return
		}
		rec := &cutWriter{ResponseWriter: w, left: cut}
		http.ServeContent(rec, r, "image", time.Unix(0, 0), bytes.NewReader(content))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if int64(len(b)) > c.left {
		c.ResponseWriter.Write(b[:c.left])
		c.left = 0
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	c.left -= int64(len(b))
	return c.ResponseWriter.Write(b)
}

func noSleep(context.Context, time.Duration) error { return nil }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(1)).Read(b)
	return b
}

func TestDownloadResumes(t *testing.T) {
	content := randomBytes(1 << 20)
	srv, hits := flakyServer(t, content, 300<<10, 3, true)
	dst := filepath.Join(t.TempDir(), "image")
	d := &Downloader{Sleep: noSleep}
	res, err := d.Download(context.Background(), srv.URL+"/image", dst)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, content) {
		t.Fatalf("content differs (%d bytes, want %d)", len(got), len(content))
	}
	if res.Downloaded != int64(len(content)) {
		t.Errorf("downloaded %d bytes over the network, want %d (no byte twice)", res.Downloaded, len(content))
	}
	if got, want := hits.Load(), int32(4); got != want {
		t.Errorf("requests = %d, want %d", got, want)
	}
	if _, err := os.Stat(dst + ".part"); !os.IsNotExist(err) {
		t.Errorf(".part file left behind: %v", err)
	}
	checkSum(t, "resumed in one call", res, content)
}

// checkSum: the digest computed on the way is the content's.
func checkSum(t *testing.T, what string, res Result, content []byte) {
	t.Helper()
	if got, want := res.SHA256, fmt.Sprintf("%x", sha256.Sum256(content)); got != want {
		t.Errorf("%s: Result.SHA256 = %s, want %s", what, got, want)
	}
}

func TestDownloadResumesAcrossCalls(t *testing.T) {
	content := randomBytes(512 << 10)
	srv, _ := flakyServer(t, content, 200<<10, 1, true)
	dst := filepath.Join(t.TempDir(), "image")
	// The first call gives up after one failed attempt, as if the node
	// rebooted in the middle of a download.
	d := &Downloader{Sleep: func(context.Context, time.Duration) error { return context.Canceled }}
	if _, err := d.Download(context.Background(), srv.URL, dst); err == nil {
		t.Fatal("first call succeeded; want it cut")
	}
	if got := fileSize(dst + ".part"); got != 200<<10 {
		t.Fatalf(".part holds %d bytes, want %d", got, 200<<10)
	}
	res, err := (&Downloader{Sleep: noSleep}).Download(context.Background(), srv.URL, dst)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.Downloaded != int64(len(content)-200<<10) {
		t.Errorf("second call: resumed=%v downloaded=%d, want true and %d", res.Resumed, res.Downloaded, len(content)-200<<10)
	}
	checkSum(t, "resumed across calls", res, content)
}

func TestDownloadServerWithoutRangeRestarts(t *testing.T) {
	content := randomBytes(256 << 10)
	srv, _ := flakyServer(t, content, 100<<10, 2, false)
	dst := filepath.Join(t.TempDir(), "image")
	res, err := (&Downloader{Sleep: noSleep}).Download(context.Background(), srv.URL, dst)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, content) {
		t.Fatal("content differs")
	}
	if res.Downloaded <= int64(len(content)) {
		t.Errorf("downloaded %d, want more than %d (restarts from 0)", res.Downloaded, len(content))
	}
	checkSum(t, "restarted", res, content)
}

func TestDownloadGivesUp(t *testing.T) {
	content := randomBytes(64 << 10)
	srv, _ := flakyServer(t, content, 1000, 1000, false) // never more than 1000 bytes, no Range
	dst := filepath.Join(t.TempDir(), "image")
	_, err := (&Downloader{Attempts: 3, Sleep: noSleep}).Download(context.Background(), srv.URL, dst)
	if err == nil || !strings.Contains(err.Error(), "attempts without progress") {
		t.Errorf("err = %v, want a bounded failure", err)
	}
	srv404 := httptest.NewServer(http.NotFoundHandler())
	defer srv404.Close()
	_, err = (&Downloader{Sleep: noSleep}).Download(context.Background(), srv404.URL, dst)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("404: err = %v, want it reported at once", err)
	}
}

// TestDownloadMaxRate: MaxRate holds a download to its rate, across a
// broken connection and the resume after it (the limiter is the
// download's, not one request's); without it the same bytes arrive at once.
func TestDownloadMaxRate(t *testing.T) {
	content := randomBytes(96 << 10)
	const rate = 64 << 10 // bytes a second; its burst is 8 KiB
	for _, c := range []struct {
		name   string
		breaks int32
	}{
		{"one request", 0},
		{"resumed after a break", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, _ := flakyServer(t, content, 40<<10, c.breaks, true)
			d := &Downloader{Sleep: noSleep, MaxRate: rate}
			start := time.Now()
			res, err := d.Download(context.Background(), srv.URL+"/image", filepath.Join(t.TempDir(), "image"))
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			checkSum(t, c.name, res, content)
			// All but the first burst waits for the limiter: at least
			// (96 KiB - 8 KiB) / 64 KiB/s = 1.375 s, whatever the machine.
			if least := time.Duration(float64(len(content)-8<<10) / rate * float64(time.Second)); took < least {
				t.Errorf("96 KiB at MaxRate 64 KiB/s took %s, want at least %s", took, least)
			}
		})
	}
}

// TestSyncingWriter: what arrives is made durable every syncBytes and
// every syncEvery within one attempt, not only at its end.
func TestSyncingWriter(t *testing.T) {
	clock := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	var syncs []int
	var buf bytes.Buffer
	w := &syncingWriter{w: &buf, now: func() time.Time { return clock }, last: clock}
	w.sync = func() error { syncs = append(syncs, buf.Len()); return nil }
	chunk := make([]byte, 1<<20)
	for i := 0; i < 9; i++ { // 9 MiB, no time passing: a sync per 4 MiB
		w.Write(chunk)
	}
	clock = clock.Add(syncEvery - time.Millisecond)
	w.Write(chunk[:10]) // not yet
	clock = clock.Add(time.Millisecond)
	w.Write(chunk[:10]) // 5 s since the last sync
	if got, want := syncs, []int{4 << 20, 8 << 20, 9<<20 + 20}; !reflect.DeepEqual(got, want) {
		t.Errorf("synced at %v bytes, want %v", got, want)
	}
	w.sync = func() error { return errors.New("disk gone") }
	clock = clock.Add(time.Hour)
	if _, err := w.Write(chunk[:1]); err == nil || err.Error() != "disk gone" {
		t.Errorf("a failed sync: Write error %v, want it reported", err)
	}
}
