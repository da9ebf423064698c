package fetch

import (
	"context"
	"io"

	"golang.org/x/time/rate"
)

// rateReader holds reads from r to a limiter's rate: after each read it
// waits until the limiter allows the bytes that arrived, so the reader
// falls behind the sender and TCP's flow control slows the sender down to
// the rate on the link itself.
type rateReader struct {
	ctx context.Context
	r   io.Reader
	lim *rate.Limiter
}

// newLimiter allows bytesPerSec bytes a second, in reads of at most an
// eighth of a second's worth (1 KiB to 64 KiB), so the rate holds even
// over short spans; nil means no limit.
func newLimiter(bytesPerSec int64) *rate.Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	burst := min(max(bytesPerSec/8, 1<<10), 64<<10)
	return rate.NewLimiter(rate.Limit(bytesPerSec), int(burst))
}

func (r *rateReader) Read(p []byte) (int, error) {
	if b := r.lim.Burst(); len(p) > b {
		p = p[:b]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := r.lim.WaitN(r.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}
