package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestGetURLVerifiesAndCaches(t *testing.T) {
	body := []byte("k3s pretend binary")
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(body)
	}))
	defer srv.Close()
	c := &Cache{Dir: t.TempDir()}
	ctx := context.Background()
	p, err := c.Get(ctx, srv.URL+"/k3s", sum(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != string(body) {
		t.Fatalf("cached content = %q, want %q", got, body)
	}
	if _, err := c.Get(ctx, srv.URL+"/k3s", sum(body)); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("server hits = %d, want 1 (second Get must come from the cache)", n)
	}
	_, err = c.Get(ctx, srv.URL+"/k3s", sum([]byte("other")))
	if !errors.Is(err, ErrMismatch) {
		t.Errorf("wrong sha256: err = %v, want ErrMismatch", err)
	}
	if _, err := c.Get(ctx, srv.URL+"/k3s", ""); err == nil {
		t.Error("unpinned URL: want an error")
	}
}

func TestGetLocalFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "in")
	os.WriteFile(src, []byte("abc"), 0o644)
	c := &Cache{Dir: filepath.Join(dir, "cache")}
	p, err := c.Get(context.Background(), src, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := filepath.Base(p), sum([]byte("abc")); got != want {
		t.Errorf("cache name = %s, want %s", got, want)
	}
	if _, err := c.Get(context.Background(), src, sum([]byte("abd"))); !errors.Is(err, ErrMismatch) {
		t.Errorf("err = %v, want ErrMismatch", err)
	}
}
