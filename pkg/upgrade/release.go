package upgrade

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/delta"
	"github.com/keso-os/keso/pkg/fetch"
	"github.com/keso-os/keso/pkg/sign"
)

// release is the new image as this upgrade gets it, checked (digest,
// signature, version) before anything is written: a full download, or a
// delta from the running slot.
type release struct {
	size    int64
	digest  [sha256.Size]byte // signed
	version string
	// info is what the image says about itself, when it was read before
	// writing (a full download); nil for a delta, whose image exists only
	// once it is in the slot.
	info *ImageInfo
	// write puts the image into the slot.
	write func(dev SlotDevice, progress func(done, total int64)) error
	// download is the file to remove once the slot is staged or armed
	// ("" when the image is a local file).
	download string
	close    func()
}

// fetchFull fetches the whole image with its digest and signature.
func (u *Upgrader) fetchFull(ctx context.Context, req Request, node Node, out *Outcome) (*release, error) {
	t0 := time.Now()
	imgPath, res, err := u.fetchImage(ctx, req.Image, "", req.MaxRate, u.recordProgress(req.SHA256, 0, false))
	if err != nil {
		return nil, err
	}
	out.FetchTime, out.Downloaded, out.Resumed = time.Since(t0), res.Downloaded, res.Resumed
	want, err := u.wantedSHA256(ctx, req)
	if err != nil {
		return nil, refuse("no --sha256 given and %s.sha256 cannot be read: %v", req.Image, err)
	}

	t0 = time.Now()
	f, err := os.Open(imgPath)
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	usable := false // until then, every return closes what it opened
	defer func() {
		if !usable {
			f.Close()
		}
	}()
	rel := &release{close: func() { f.Close() }}
	if imgPath != req.Image {
		rel.download = imgPath
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat image: %w", err)
	}
	rel.size = fi.Size()
	if rel.digest, err = digest(f, fi.Size()); err != nil {
		return nil, fmt.Errorf("hash image: %w", err)
	}
	if hex.EncodeToString(rel.digest[:]) != want {
		if rel.download != "" {
			os.Remove(imgPath) // a bad download: the next attempt starts afresh
		}
		return nil, refuse("sha256 of %s is %x, want %s: the image is corrupt or not the one published", req.Image, rel.digest, want)
	}
	if err := u.checkImageSignature(ctx, req.Image, rel.digest, node, out); err != nil {
		return nil, err
	}
	info, err := ReadImage(f, fi.Size())
	if err != nil {
		return nil, refuse("%v", err)
	}
	rel.info, rel.version = &info, info.Version
	out.VerifyTime = time.Since(t0)
	u.logf("image %s: %d bytes, sha256 ok, signed by key %s, version %s", req.Image, fi.Size(), out.KeyID, info.Version)
	rel.write = func(dev SlotDevice, progress func(done, total int64)) error {
		return copyAt(dev, f, rel.size, progress)
	}
	usable = true
	return rel, nil
}

// wantedSHA256 is the digest the request asks for: --sha256, else the
// first field of IMAGE.sha256, in lower case.
func (u *Upgrader) wantedSHA256(ctx context.Context, req Request) (string, error) {
	if want := strings.ToLower(strings.TrimSpace(req.SHA256)); want != "" {
		return want, nil
	}
	b, err := u.fetchSmall(ctx, req.Image+".sha256")
	if err != nil {
		return "", err
	}
	return strings.ToLower(firstField(b)), nil
}

// checkImageSignature checks IMAGE.sig over the image's digest with the
// node's trusted keys and records the key: what is armed is always a
// signed image, whether downloaded whole or built from a delta.
func (u *Upgrader) checkImageSignature(ctx context.Context, image string, digest [sha256.Size]byte, node Node, out *Outcome) error {
	sigFile, err := u.fetchSmall(ctx, image+".sig")
	if err != nil {
		return refuse("signature %s.sig cannot be read: %v", image, err)
	}
	key, err := sign.Verify(sigFile, digest, node.TrustedKeys)
	if err != nil {
		return refuse("%v", err)
	}
	out.KeyID = sign.KeyID(key)
	return nil
}

// fetchDelta fetches a delta from an image this node holds when the
// release publishes one (delta.PathsFor): from the running version, or
// from what the inactive slot holds (the image staged or run before), the
// one with less data first; else the delta from nothing when there is
// one. It returns nil, nil when the image itself must be fetched. A
// published delta that fails its signature is refused, not skipped.
func (u *Upgrader) fetchDelta(ctx context.Context, req Request, node Node, out *Outcome) (*release, error) {
	type published struct {
		src   deltaSource
		p     delta.Paths
		ix    delta.Index
		index []byte
	}
	var found []published
	for _, src := range u.deltaSources(node) {
		p := delta.PathsFor(req.Image, src.version)
		ix, index, err := u.fetchIndex(ctx, req, node, p)
		if err != nil {
			return nil, err
		}
		if index != nil {
			found = append(found, published{src, p, ix, index})
		}
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].ix.Data.Size < found[j].ix.Data.Size })
	for _, p := range found {
		if rel, err := u.fetchDeltaFrom(ctx, req, node, p.src, p.p, p.ix, p.index, out); rel != nil || err != nil {
			return rel, err
		}
	}
	p := delta.PathsFor(req.Image, "")
	ix, index, err := u.fetchIndex(ctx, req, node, p)
	if err != nil || index == nil {
		return nil, err
	}
	return u.fetchDeltaFrom(ctx, req, node, u.runningSource(node), p, ix, index, out)
}

// fetchIndex fetches and opens a delta's signed index; it returns a nil
// index when none is published there.
func (u *Upgrader) fetchIndex(ctx context.Context, req Request, node Node, p delta.Paths) (delta.Index, []byte, error) {
	b, err := u.fetchUpTo(ctx, p.Index, delta.MaxIndexBytes)
	if notPublished(err) {
		u.logf("no delta %s is published", p.Index)
		return delta.Index{}, nil, nil
	}
	if err != nil {
		return delta.Index{}, nil, refuse("delta index %s cannot be read: %v", p.Index, err)
	}
	sig, err := u.fetchSmall(ctx, p.Sig)
	if err != nil {
		return delta.Index{}, nil, refuse("delta index signature %s cannot be read: %v", p.Sig, err)
	}
	ix, err := delta.Open(b, sig, node.TrustedKeys)
	if err != nil {
		return delta.Index{}, nil, refuse("delta index %s: %v", p.Index, err)
	}
	if want := strings.ToLower(strings.TrimSpace(req.SHA256)); want != "" && want != ix.To.SHA256 {
		return delta.Index{}, nil, refuse("the delta builds an image with sha256 %s, --sha256 says %s", ix.To.SHA256, want)
	}
	return ix, b, nil
}

// fetchDeltaFrom fetches the data of the delta ix published at p (its
// index as served) and returns the release it builds from src; nil, nil
// when src does not hold the image the delta starts from.
func (u *Upgrader) fetchDeltaFrom(ctx context.Context, req Request, node Node, src deltaSource, p delta.Paths, ix delta.Index, index []byte, out *Outcome) (*release, error) {
	old, err := src.open(ix)
	if err != nil || old.r == nil {
		return nil, err
	}
	usable := false // until then, every return closes what it opened
	defer func() {
		if !usable {
			old.close()
		}
	}()
	t0 := time.Now()
	raw, _ := hex.DecodeString(ix.To.SHA256) // Validate checked: 64 hex digits
	rel := &release{size: ix.To.Size, version: ix.Version, digest: [sha256.Size]byte(raw)}
	if err := u.checkImageSignature(ctx, req.Image, rel.digest, node, out); err != nil {
		return nil, err
	}
	what := "from " + ix.FromVersion + " (" + src.what + ")"
	if ix.From.Size == 0 {
		what = "from nothing (the image compressed)"
	}
	u.logf("delta %s to %s: %d bytes of data for a %d-byte image", what, ix.Version, ix.Data.Size, ix.To.Size)

	dataPath, res, err := u.fetchImage(ctx, p.Data, "delta-"+ix.Data.SHA256[:16]+".data", req.MaxRate,
		u.recordProgress(ix.To.SHA256, int64(len(index)), true))
	if err != nil {
		return nil, err
	}
	out.FetchTime, out.Downloaded, out.Resumed, out.DeltaFrom = time.Since(t0), res.Downloaded+int64(len(index)), res.Resumed, src.what
	t0 = time.Now()
	data, err := os.Open(dataPath)
	if err != nil {
		return nil, fmt.Errorf("open delta data: %w", err)
	}
	defer func() {
		if !usable {
			data.Close()
		}
	}()
	if dataPath != p.Data {
		rel.download = dataPath
	}
	if err := delta.CheckData(ix, data); err != nil {
		if rel.download != "" {
			os.Remove(dataPath) // a bad download: the next attempt starts afresh
		}
		return nil, refuse("%s: %v", p.Data, err)
	}
	out.VerifyTime = time.Since(t0)
	rel.close = func() { old.close(); data.Close() }
	rel.write = func(dev SlotDevice, progress func(done, total int64)) error {
		st, err := delta.Apply(ix, old.r, data, dev, progress)
		if err != nil {
			return err
		}
		u.logf("delta applied: %d bytes copied from %s, %d decoded, %d already in place", st.Copied, src.what, st.Decoded, st.Kept)
		return nil
	}
	usable = true
	return rel, nil
}

// notPublished is a fetch error that says the file does not exist.
func notPublished(err error) bool {
	var se fetch.StatusError
	return errors.Is(err, fs.ErrNotExist) || errors.As(err, &se) && se.Code == http.StatusNotFound
}
