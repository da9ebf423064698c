package delta

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/restic/chunker"
)

// Pol is the Rabin polynomial the builder chunks images with (irreducible;
// any fixed one works, but old and new must be chunked alike).
const Pol = chunker.Pol(0x3DA3358B4DC173)

// Options tune Make; the zero value is keso-build's choice.
type Options struct {
	AverageBits int   // chunks of 2^AverageBits bytes on average (default 14: 16 KiB)
	Piece       int64 // an operation writes at most this much (default 4 MiB): the node holds one in memory, twice
	Margin      int64 // old bytes on each side of a piece's counterpart in its dictionary (default 2 MiB)
	// MinCopy: a copy shorter than this between two changed runs joins
	// them (default 64 KiB): the dictionary encodes it in a few bytes,
	// and one frame costs less than two frames and an operation.
	MinCopy int64
}

func (o Options) withDefaults() Options {
	if o.AverageBits == 0 {
		o.AverageBits = 14
	}
	if o.Piece == 0 {
		o.Piece = 4 << 20
	}
	if o.Margin == 0 {
		o.Margin = 2 << 20
	}
	if o.MinCopy == 0 {
		o.MinCopy = 64 << 10
	}
	return o
}

type span struct{ off, len int64 }

// chunks cuts b at content-defined boundaries: an insertion moves the
// boundaries near it only, so unchanged content keeps its chunks.
func chunks(b []byte, o Options) ([]span, error) {
	c := chunker.NewWithBoundaries(bytes.NewReader(b), Pol, 1<<(o.AverageBits-2), 1<<(o.AverageBits+2))
	c.SetAverageBits(o.AverageBits)
	var out []span
	buf := make([]byte, 1<<(o.AverageBits+2))
	for {
		ch, err := c.Next(buf)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("chunk: %w", err)
		}
		out = append(out, span{int64(ch.Start), int64(ch.Length)})
	}
}

// Make plans the delta that turns old into new and writes its data file
// to data. The index it returns has Format, From, To, Data and Ops set;
// the caller adds the versions.
func Make(old, new []byte, data io.Writer, o Options) (Index, error) {
	o = o.withDefaults()
	oc, err := chunks(old, o)
	if err != nil {
		return Index{}, err
	}
	nc, err := chunks(new, o)
	if err != nil {
		return Index{}, err
	}
	// Where each chunk of old is; content found more than once (a file
	// shipped twice, runs of zeros) has every place listed.
	at := map[[32]byte][]int64{}
	for _, c := range oc {
		h := sha256.Sum256(old[c.off : c.off+c.len])
		at[h] = append(at[h], c.off)
	}
	// Matched chunks become copies (merged while they follow each other
	// in both images); runs of unmatched chunks become gaps.
	var plan []run   // a run with from < 0 is a gap
	next := int64(0) // where in old the last copy ended: the likeliest place of what follows
	for _, c := range nc {
		from := nearest(at[sha256.Sum256(new[c.off:c.off+c.len])], next)
		if from >= 0 {
			next = from + c.len
		}
		if n := len(plan); n > 0 {
			last := &plan[n-1]
			if (from < 0 && last.from < 0) || (from >= 0 && last.from >= 0 && last.from+last.len == from && last.len+c.len <= o.Piece) {
				last.len += c.len
				continue
			}
		}
		plan = append(plan, run{c.off, c.len, from})
	}
	plan = absorbShortCopies(plan, o.MinCopy)

	hw := &countWriter{w: data, h: sha256.New()}
	ix := Index{Format: Format, From: blob(old), To: blob(new)}
	for i, r := range plan {
		if r.from >= 0 {
			from := r.from
			ix.Ops = append(ix.Ops, Op{Off: r.off, Len: r.len, SHA256: sum(new[r.off : r.off+r.len]), From: &from})
			continue
		}
		// The gap's counterpart in the old image lies between where the
		// copies around it come from.
		cs := int64(0)
		if i > 0 {
			cs = plan[i-1].from + plan[i-1].len
		}
		ce := min(int64(len(old)), cs+r.len) // no copy after it: as long as the gap
		if i+1 < len(plan) && plan[i+1].from >= cs {
			ce = plan[i+1].from
		}
		for p := int64(0); p < r.len; p += o.Piece {
			n := min(o.Piece, r.len-p)
			// Map the piece proportionally onto the counterpart.
			ds := cs + (ce-cs)*p/r.len - o.Margin
			de := cs + (ce-cs)*(p+n)/r.len + o.Margin
			ds, de = max(ds, 0), min(de, int64(len(old)))
			if de-ds > MaxDictLen {
				de = ds + MaxDictLen
			}
			if de-ds < 8 { // zstd wants at least 8 bytes of dictionary
				ds, de = 0, 0
			}
			piece := new[r.off+p : r.off+p+n]
			frame, err := compress(piece, old[ds:de])
			if err != nil {
				return Index{}, err
			}
			at := hw.n
			if _, err := hw.Write(frame); err != nil {
				return Index{}, fmt.Errorf("write delta data: %w", err)
			}
			ix.Ops = append(ix.Ops, Op{Off: r.off + p, Len: n, SHA256: sum(piece),
				Zstd: &Frame{At: at, Len: int64(len(frame)), DictOff: ds, DictLen: de - ds}})
		}
	}
	ix.Data = Blob{SHA256: hex.EncodeToString(hw.h.Sum(nil)), Size: hw.n}
	return ix, ix.Validate()
}

// run is a stretch of the new image: a copy from old at from, or, with
// from < 0, a gap the data file fills.
type run struct{ off, len, from int64 }

// nearest is the place in offs closest to want, -1 if there is none.
func nearest(offs []int64, want int64) int64 {
	best := int64(-1)
	for _, o := range offs {
		if best < 0 || abs(o-want) < abs(best-want) {
			best = o
		}
	}
	return best
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// absorbShortCopies turns a copy shorter than minCopy that has a gap on
// either side into gap, and joins neighbouring gaps.
func absorbShortCopies(plan []run, minCopy int64) []run {
	var out []run
	for i, r := range plan {
		if r.from >= 0 && r.len < minCopy && ((i > 0 && plan[i-1].from < 0) || (i+1 < len(plan) && plan[i+1].from < 0)) {
			r.from = -1
		}
		if n := len(out); n > 0 && r.from < 0 && out[n-1].from < 0 {
			out[n-1].len += r.len
			continue
		}
		out = append(out, r)
	}
	return out
}

// compress writes one zstd frame of piece with dict as its history.
func compress(piece, dict []byte) ([]byte, error) {
	window := zstd.MinWindowSize
	for window < len(dict)+len(piece) && window < zstd.MaxWindowSize {
		window <<= 1
	}
	opts := []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(window), zstd.WithEncoderCRC(false)}
	if len(dict) > 0 {
		opts = append(opts, zstd.WithEncoderDictRaw(0, dict))
	}
	enc, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	defer enc.Close()
	return enc.EncodeAll(piece, nil), nil
}

func blob(b []byte) Blob { return Blob{SHA256: sum(b), Size: int64(len(b))} }

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

type countWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	return n, err
}
