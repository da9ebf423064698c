package bootreport

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestClient(t *testing.T) {
	var mu sync.Mutex
	got := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")] = string(b)
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/refuse/log") {
			http.Error(w, "no", http.StatusForbidden)
		}
	}))
	defer srv.Close()
	c := Client{URL: srv.URL + "/m/52-54-00-00-00-01/report"}
	if err := c.Step(context.Background(), Step{Step: "installed", Detail: "/dev/vda"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Log(context.Background(), []byte("line 1\nline 2\n")); err != nil {
		t.Fatal(err)
	}
	var s Step
	if err := json.Unmarshal([]byte(got["POST /m/52-54-00-00-00-01/report application/json"]), &s); err != nil || s != (Step{"installed", "/dev/vda"}) {
		t.Errorf("step posted = %+v, %v; want installed /dev/vda", s, err)
	}
	if got, want := got["POST /m/52-54-00-00-00-01/report/log text/plain; charset=utf-8"], "line 1\nline 2\n"; got != want {
		t.Errorf("log posted = %q, want %q", got, want)
	}
	err := Client{URL: srv.URL + "/refuse"}.Log(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a refused report: err = %v, want one naming 403", err)
	}
	if err := (Client{URL: "http://127.0.0.1:1/x"}).Step(context.Background(), Step{Step: "k3s"}); err == nil {
		t.Error("a report to a closed port: no error")
	}
}

func TestRing(t *testing.T) {
	tests := []struct {
		size   int
		writes []string
		want   string
	}{
		{10, []string{"abc", "def"}, "abcdef"},
		{4, []string{"abc", "def"}, "[... 2 earlier bytes dropped]\ncdef"},
		{4, []string{"abcdefgh"}, "[... 4 earlier bytes dropped]\nefgh"},
		{4, nil, ""},
	}
	for _, tt := range tests {
		r := NewRing(tt.size)
		for _, w := range tt.writes {
			if n, err := r.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", w, n, err)
			}
		}
		if got := string(r.Bytes()); got != tt.want {
			t.Errorf("ring %d after %q = %q, want %q", tt.size, tt.writes, got, tt.want)
		}
	}
}
