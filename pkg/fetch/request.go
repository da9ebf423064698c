package fetch

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Retry bounds how long a small request keeps trying while the network
// comes up. The zero value means the defaults below; Now and Sleep are
// injectable so that tests run on a fake clock.
type Retry struct {
	// Budget is the most time spent on one source, all attempts and
	// pauses included (default 60 s). The caller's context may cut it
	// shorter.
	Budget time.Duration
	// AttemptTimeout bounds one request (default 10 s).
	AttemptTimeout time.Duration
	// First is the pause after the first failure (default 500 ms); each
	// later pause doubles, up to Max (default 8 s).
	First, Max time.Duration
	Now        func() time.Time
	Sleep      func(ctx context.Context, d time.Duration) error
}

func (r Retry) withDefaults() Retry {
	if r.Budget <= 0 {
		r.Budget = 60 * time.Second
	}
	if r.AttemptTimeout <= 0 {
		r.AttemptTimeout = 10 * time.Second
	}
	if r.First <= 0 {
		r.First = 500 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 8 * time.Second
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Sleep == nil {
		r.Sleep = sleepCtx
	}
	return r
}

// errPermanent marks an attempt error that retrying cannot fix.
type errPermanent struct{ err error }

func (e errPermanent) Error() string { return e.err.Error() }
func (e errPermanent) Unwrap() error { return e.err }

// permanent wraps err so that Retry.do stops at once.
func permanent(err error) error { return errPermanent{err} }

// do runs attempt until it succeeds, fails permanently, or the budget (or
// ctx) runs out. It returns the number of attempts made.
func (r Retry) do(ctx context.Context, what string, attempt func(ctx context.Context) error) (int, error) {
	r = r.withDefaults()
	start := r.Now()
	pause := r.First
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, r.AttemptTimeout)
		err := attempt(actx)
		cancel()
		if err == nil {
			return n, nil
		}
		var perm errPermanent
		if errors.As(err, &perm) {
			return n, perm.err
		}
		if ctx.Err() != nil {
			return n, fmt.Errorf("%s: gave up after %d attempts: %w (last error: %v)", what, n, ctx.Err(), err)
		}
		elapsed := r.Now().Sub(start)
		if elapsed+pause > r.Budget {
			return n, fmt.Errorf("%s: gave up after %d attempts in %s (budget %s): %w",
				what, n, elapsed.Round(time.Millisecond), r.Budget, err)
		}
		if serr := r.Sleep(ctx, pause); serr != nil {
			return n, fmt.Errorf("%s: gave up after %d attempts: %w (last error: %v)", what, n, serr, err)
		}
		pause *= 2
		if pause > r.Max {
			pause = r.Max
		}
	}
}

// Redact hides a password in a URL's user info, for logs and source names.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err == nil {
		return u.Redacted()
	}
	// Not a URL net/url takes (a space in the host, a bad %-escape):
	// hide whatever stands between "://" and the last '@' before the
	// path, the user info, rather than show it as it is.
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		return scheme + "://xxxxx" + rest[at:]
	}
	return raw
}

// StatusError is a non-2xx answer.
type StatusError struct {
	URL  string // redacted
	Code int
}

func (e StatusError) Error() string {
	return fmt.Sprintf("GET %s: %d %s", e.URL, e.Code, http.StatusText(e.Code))
}

// Get fetches rawURL (see Request).
func Get(ctx context.Context, c *http.Client, r Retry, rawURL string, header http.Header, limit int64) ([]byte, int, error) {
	return Request(ctx, c, r, http.MethodGet, rawURL, header, limit)
}

// Request makes a small request (a config, a key list, a metadata value,
// a digest file) with retries within r's budget while the network comes
// up: connection errors, timeouts, 5xx, 408 and 429 are retried; any other
// non-2xx status is returned at once as a StatusError. header is added to
// each request; a body larger than limit bytes is an error. It returns the
// body and the last status. Errors name the URL with its password hidden,
// and say to check the clock or the CA bundle for a certificate that does
// not verify. Large files go through Downloader instead.
func Request(ctx context.Context, c *http.Client, r Retry, method, rawURL string, header http.Header, limit int64) ([]byte, int, error) {
	if c == nil {
		c = http.DefaultClient
	}
	name := Redact(rawURL)
	var (
		body   []byte
		status int
	)
	_, err := r.do(ctx, method+" "+name, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
		if err != nil {
			return permanent(fmt.Errorf("%s %s: %w", method, name, err))
		}
		for k, vs := range header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		resp, err := c.Do(req)
		if err != nil {
			if certErr := certificateHint(err); certErr != nil {
				return permanent(certErr)
			}
			return fmt.Errorf("%s %s: %w", method, name, unwrapURLError(err))
		}
		defer resp.Body.Close()
		status = resp.StatusCode
		if status/100 != 2 {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			se := StatusError{URL: name, Code: status}
			if status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests {
				return se
			}
			return permanent(se)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return fmt.Errorf("%s %s: read body: %w", method, name, err)
		}
		if int64(len(b)) > limit {
			return permanent(fmt.Errorf("%s %s: larger than %s", method, name, sizeString(limit)))
		}
		body = b
		return nil
	})
	return body, status, err
}

// unwrapURLError drops net/url's "Get \"…\": " prefix (we say it already).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// certificateHint turns a certificate that is "not yet valid" or "expired"
// into an error that says to check the clock: a board without a real-time
// clock boots in 1970 until NTP has run. Other errors give nil.
func certificateHint(err error) error {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == x509.Expired {
		return fmt.Errorf("%w (the clock says %s: a machine without a battery-backed clock needs ntp_servers, or use http:// for the config)",
			unwrapURLError(err), time.Now().UTC().Format(time.RFC3339))
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return fmt.Errorf("%w (the server's certificate is not signed by a root in /etc/ssl/certs/ca-certificates.crt)", unwrapURLError(err))
	}
	var hn x509.HostnameError
	if errors.As(err, &hn) {
		return unwrapURLError(err)
	}
	if strings.Contains(err.Error(), "x509:") {
		return unwrapURLError(err)
	}
	return nil
}

// sizeString says a byte limit the way a user reads it.
func sizeString(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
