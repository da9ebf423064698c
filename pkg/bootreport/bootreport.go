// Package bootreport tells the server a node booted from how the boot is
// going: each step as one small JSON POST to keso.report_url (the netboot
// server, `keso-build netboot serve`, puts it on the kernel command line),
// and the agent's console log, POSTed beside it to URL + "/log".
//
// Reports are best effort: each is bounded by a short timeout and its
// failure is returned for the caller to print, never retried, so a server
// that went away cannot hold a boot up.
package bootreport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Timeout bounds one report.
const Timeout = 5 * time.Second

// Step is one report: what happened (installed, k3s) and a line of detail.
type Step struct {
	Step   string `json:"step"`
	Detail string `json:"detail,omitempty"`
}

// Doer sends an HTTP request; *http.Client is one.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Client posts to one report URL.
type Client struct {
	URL  string
	HTTP Doer // default http.DefaultClient
}

// Step posts one step.
func (c Client) Step(ctx context.Context, s Step) error {
	body, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return c.post(ctx, c.URL, "application/json", body)
}

// Log posts the boot log to URL + "/log".
func (c Client) Log(ctx context.Context, log []byte) error {
	return c.post(ctx, c.URL+"/log", "text/plain; charset=utf-8", log)
}

func (c Client) post(ctx context.Context, url, ctype string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("report to %s: %w", url, err)
	}
	req.Header.Set("Content-Type", ctype)
	d := c.HTTP
	if d == nil {
		d = http.DefaultClient
	}
	resp, err := d.Do(req)
	if err != nil {
		return fmt.Errorf("report to %s: %w", url, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("report to %s: server answered %s", url, resp.Status)
	}
	return nil
}

// Ring keeps the last Size bytes written to it: the console log a node
// ships back. It is safe for concurrent use.
type Ring struct {
	mu   sync.Mutex
	size int
	buf  []byte
	lost int64 // bytes dropped from the front
}

// NewRing returns a ring that keeps the last size bytes.
func NewRing(size int) *Ring { return &Ring{size: size} }

// Write keeps p, dropping the oldest bytes beyond the ring's size.
func (r *Ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	if over := len(r.buf) - r.size; over > 0 {
		r.lost += int64(over)
		r.buf = append(r.buf[:0], r.buf[over:]...)
	}
	return len(p), nil
}

// Bytes returns a copy of what the ring holds, after a line saying how
// much was dropped when the ring overflowed.
func (r *Ring) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b []byte
	if r.lost > 0 {
		b = fmt.Appendf(b, "[... %d earlier bytes dropped]\n", r.lost)
	}
	return append(b, r.buf...)
}
