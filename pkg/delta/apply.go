package delta

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Stats says where the new image's bytes came from.
type Stats struct {
	Copied  int64 // from the old image
	Decoded int64 // from the data file
	Kept    int64 // already in the target (an earlier, interrupted apply)
}

// CheckFrom verifies that old is the image the delta starts from: a node
// that runs another build is told to fetch the full image instead.
func CheckFrom(ix Index, old io.ReaderAt) error {
	got, err := hashAt(old, ix.From.Size)
	if err != nil {
		return fmt.Errorf("delta: read the running image: %w", err)
	}
	if got != ix.From.SHA256 {
		return fmt.Errorf("delta: the running image's sha256 is %s, the delta starts from %s (%s): fetch the full image instead", got, ix.From.SHA256, ix.FromVersion)
	}
	return nil
}

// CheckData verifies the data file: a truncated or altered download is
// refused before anything is written.
func CheckData(ix Index, data io.ReaderAt) error {
	got, err := hashAt(data, ix.Data.Size)
	if err != nil {
		return fmt.Errorf("delta: read the data file: %w (truncated?)", err)
	}
	if got != ix.Data.SHA256 {
		return fmt.Errorf("delta: the data file's sha256 is %s, the index names %s: the download is corrupt or not this delta's", got, ix.Data.SHA256)
	}
	return nil
}

// Check is CheckFrom and CheckData: everything Apply reads is what the
// signed index names.
func Check(ix Index, old, data io.ReaderAt) error {
	if err := CheckFrom(ix, old); err != nil {
		return err
	}
	return CheckData(ix, data)
}

// Target is where Apply writes: a slot, read first to keep what an
// interrupted apply wrote.
type Target interface {
	io.ReaderAt
	io.WriterAt
}

// Apply writes the new image into dst from old and data, which Check has
// verified. An operation whose bytes dst already holds (an apply that a
// power cut interrupted) is kept; every other is built in memory, checked
// against its sha256, then written.
func Apply(ix Index, old, data io.ReaderAt, dst Target, progress func(done, total int64)) (Stats, error) {
	var st Stats
	var buf, have []byte
	for i, op := range ix.Ops {
		have = grow(have, op.Len)
		if _, err := dst.ReadAt(have, op.Off); err == nil && sum(have) == op.SHA256 {
			st.Kept += op.Len
			continue
		}
		var err error
		if buf, err = build(op, old, data, buf); err != nil {
			return st, fmt.Errorf("delta: op %d (bytes %d+%d): %w", i, op.Off, op.Len, err)
		}
		if got := sum(buf); got != op.SHA256 {
			return st, fmt.Errorf("delta: op %d (bytes %d+%d): sha256 %s, want %s: nothing of it was written", i, op.Off, op.Len, got, op.SHA256)
		}
		if _, err := dst.WriteAt(buf, op.Off); err != nil {
			return st, fmt.Errorf("delta: write bytes %d+%d: %w", op.Off, op.Len, err)
		}
		if op.From != nil {
			st.Copied += op.Len
		} else {
			st.Decoded += op.Len
		}
		if progress != nil {
			progress(op.Off+op.Len, ix.To.Size)
		}
	}
	return st, nil
}

// build returns op's bytes, reusing buf.
func build(op Op, old, data io.ReaderAt, buf []byte) ([]byte, error) {
	buf = grow(buf, op.Len)
	if op.From != nil {
		if _, err := old.ReadAt(buf, *op.From); err != nil {
			return nil, fmt.Errorf("read old bytes %d+%d: %w", *op.From, op.Len, err)
		}
		return buf, nil
	}
	z := op.Zstd
	frame := make([]byte, z.Len)
	if _, err := data.ReadAt(frame, z.At); err != nil {
		return nil, fmt.Errorf("read data bytes %d+%d: %w", z.At, z.Len, err)
	}
	opts := []zstd.DOption{zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(uint64(MaxDictLen + MaxOpLen)),
		zstd.WithDecoderMaxMemory(uint64(op.Len))}
	if z.DictLen > 0 {
		dict := make([]byte, z.DictLen)
		if _, err := old.ReadAt(dict, z.DictOff); err != nil {
			return nil, fmt.Errorf("read dictionary %d+%d: %w", z.DictOff, z.DictLen, err)
		}
		opts = append(opts, zstd.WithDecoderDictRaw(0, dict))
	}
	dec, err := zstd.NewReader(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	defer dec.Close()
	out, err := dec.DecodeAll(frame, buf[:0])
	if err != nil {
		return nil, fmt.Errorf("zstd frame at %d: %w", z.At, err)
	}
	if int64(len(out)) != op.Len {
		return nil, fmt.Errorf("zstd frame at %d: %d bytes, want %d", z.At, len(out), op.Len)
	}
	return out, nil
}

func grow(b []byte, n int64) []byte {
	if int64(cap(b)) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// hashAt is the sha256 of r's first n bytes, hex.
func hashAt(r io.ReaderAt, n int64) (string, error) {
	h := sha256.New()
	got, err := io.Copy(h, io.NewSectionReader(r, 0, n))
	if err != nil {
		return "", err
	}
	if got < n {
		return "", fmt.Errorf("%d bytes, want %d", got, n)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
