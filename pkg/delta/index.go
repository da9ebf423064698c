// Package delta makes and applies keso's upgrade deltas: what a node
// running one release fetches to write the next one into its inactive
// slot, instead of the whole root image.
//
// A delta is two files: an index (JSON, signed) and a data file. The index
// names the image the node must run (From: sha256 and size), the image it
// builds (To), the data file (size and sha256), and a list of operations
// that, in order, write every byte of the new image exactly once:
//
//   - copy: the bytes are in the old image at From; nothing is fetched;
//   - zstd: the bytes are a zstd frame in the data file at At, compressed
//     with a slice of the old image (Dict) as its dictionary, the way
//     `zstd --patch-from` works, so a rebuilt binary costs what changed in
//     it, not its size.
//
// Every operation carries the sha256 of the bytes it writes. Make is the
// builder's planner (pure: bytes in, index and data out); Apply is the
// node's thin applier over io.ReaderAt and io.WriterAt seams.
package delta

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/keso-os/keso/pkg/sign"
)

// Format names this index format; an index with another is refused.
const Format = "keso-delta/1"

// MaxOpLen bounds the bytes one operation writes (and so the memory the
// node needs to check it before writing).
const MaxOpLen = 16 << 20

// MaxIndexBytes bounds an index a node reads (a 1 GiB image cut into
// MaxOpLen operations needs ~10 KB; small changes spread over it, more).
const MaxIndexBytes = 8 << 20

// MaxDictLen bounds a zstd operation's dictionary (memory on the node).
const MaxDictLen = 64 << 20

// Blob is a file the index names by size and digest.
type Blob struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Op writes To[Off, Off+Len).
type Op struct {
	Off    int64  `json:"off"`
	Len    int64  `json:"len"`
	SHA256 string `json:"sha256"` // of the bytes written
	// Exactly one of From and Zstd.
	From *int64 `json:"from,omitempty"` // copy old[*From, *From+Len)
	Zstd *Frame `json:"zstd,omitempty"`
}

// Frame is a zstd frame in the data file.
type Frame struct {
	At      int64 `json:"at"`  // offset in the data file
	Len     int64 `json:"len"` // compressed bytes
	DictOff int64 `json:"dictOff"`
	DictLen int64 `json:"dictLen"` // 0: no dictionary
}

// Index is a delta's signed description.
type Index struct {
	Format string `json:"format"`
	// Version is the release the delta builds; FromVersion the one it
	// starts from (what the node runs).
	Version     string `json:"version"`
	FromVersion string `json:"fromVersion"`
	From        Blob   `json:"from"`
	To          Blob   `json:"to"`
	Data        Blob   `json:"data"`
	Ops         []Op   `json:"ops"`
}

// Fetched is how many bytes a node on From fetches for To: the index and
// the data file.
func (ix Index) Fetched(indexBytes int64) int64 { return indexBytes + ix.Data.Size }

// Parse reads and checks an index.
func Parse(b []byte) (Index, error) {
	var ix Index
	if err := json.Unmarshal(b, &ix); err != nil {
		return Index{}, fmt.Errorf("delta index: not JSON (truncated or not an index?): %w", err)
	}
	if err := ix.Validate(); err != nil {
		return Index{}, err
	}
	return ix, nil
}

// Validate checks that the operations write every byte of To exactly once,
// in order, from inside From and the data file.
func (ix Index) Validate() error {
	if ix.Format != Format {
		return fmt.Errorf("delta index: format %q, want %q (made by a newer keso-build?)", ix.Format, Format)
	}
	for _, b := range []struct {
		what string
		b    Blob
	}{{"from", ix.From}, {"to", ix.To}, {"data", ix.Data}} {
		if err := checkSum(b.b.SHA256); err != nil {
			return fmt.Errorf("delta index: %s: %w", b.what, err)
		}
		if b.b.Size < 0 {
			return fmt.Errorf("delta index: %s: size %d", b.what, b.b.Size)
		}
	}
	var next, data int64
	for i, op := range ix.Ops {
		bad := func(format string, a ...any) error {
			return fmt.Errorf("delta index: op %d (bytes %d+%d): %s", i, op.Off, op.Len, fmt.Sprintf(format, a...))
		}
		if op.Off != next {
			return bad("starts at %d, want %d: the operations must cover the image in order", op.Off, next)
		}
		if op.Len <= 0 || op.Len > MaxOpLen {
			return bad("length out of range (1..%d)", MaxOpLen)
		}
		if err := checkSum(op.SHA256); err != nil {
			return bad("%v", err)
		}
		switch {
		case (op.From == nil) == (op.Zstd == nil):
			return bad("want exactly one of from and zstd")
		case op.From != nil:
			if *op.From < 0 || *op.From+op.Len > ix.From.Size {
				return bad("copies old bytes %d+%d, past the old image's %d", *op.From, op.Len, ix.From.Size)
			}
		default:
			z := op.Zstd
			if z.At != data || z.Len <= 0 {
				return bad("frame at %d+%d, want the next %d: frames must follow each other in the data file", z.At, z.Len, data)
			}
			data += z.Len
			if z.DictOff < 0 || z.DictLen < 0 || z.DictLen > MaxDictLen || z.DictOff+z.DictLen > ix.From.Size {
				return bad("dictionary %d+%d outside the old image's %d bytes (or over %d)", z.DictOff, z.DictLen, ix.From.Size, MaxDictLen)
			}
		}
		next += op.Len
	}
	if next != ix.To.Size {
		return fmt.Errorf("delta index: the operations write %d bytes, the image has %d (truncated index?)", next, ix.To.Size)
	}
	if data != ix.Data.Size {
		return fmt.Errorf("delta index: the frames hold %d bytes, the data file %d", data, ix.Data.Size)
	}
	return nil
}

func checkSum(s string) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return errors.New("sha256 must be 64 hex digits")
	}
	return nil
}

// Marshal is the index as it is signed and served.
func (ix Index) Marshal() ([]byte, error) {
	b, err := json.Marshal(ix)
	if err != nil {
		return nil, fmt.Errorf("delta index: %w", err)
	}
	return append(b, '\n'), nil
}

// Paths are where a delta is published, beside the full image it builds
// (a URL or a path): IMAGE.delta/from-VERSION.json, its signature .json.sig
// and its data file .data. A node running VERSION looks there first; then
// at IMAGE.delta/full.*, the delta from nothing (the image compressed, in
// pieces it can check and resume); then it fetches the image itself.
type Paths struct{ Index, Sig, Data string }

// PathsFor returns the delta paths for a node running fromVersion, or for
// the delta from nothing when fromVersion is "".
func PathsFor(image, fromVersion string) Paths {
	base := image + ".delta/full"
	if fromVersion != "" {
		base = image + ".delta/from-" + url.PathEscape(fromVersion)
	}
	return Paths{Index: base + ".json", Sig: base + ".json.sig", Data: base + ".data"}
}

// Sign returns the index as it is served and its signature file, made
// with the release key.
func (ix Index) Sign(priv ed25519.PrivateKey) (index, sig []byte, err error) {
	if index, err = ix.Marshal(); err != nil {
		return nil, nil, err
	}
	return index, sign.SignDeltaIndex(priv, sha256.Sum256(index)), nil
}

// Open checks a served index's signature against the trusted keys, then
// parses and validates it.
func Open(index, sig []byte, trusted []ed25519.PublicKey) (Index, error) {
	if _, err := sign.VerifyDeltaIndex(sig, sha256.Sum256(index), trusted); err != nil {
		return Index{}, err
	}
	return Parse(index)
}
