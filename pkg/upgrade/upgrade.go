// Package upgrade is the node side of a keso upgrade: fetch a signed root
// image, verify it before anything is written, write it to the inactive
// slot, read it back, install its kernel and initrd on the ESP and arm a
// trial boot with a try counter (pkg/bootloader). At boot, Assess tells the
// agent whether it runs a trial and whether an earlier trial was rolled
// back; MarkHealthy commits a trial once the node is healthy.
//
// Crash safety: nothing on the ESP changes until the new slot is written
// and verified, and the ESP changes themselves are ordered by
// bootloader.Arm so that every prefix boots a complete version. The slot
// being written is never the running one.
//
// Side effects: the downloaded image or delta in WorkDir (removed once
// written or found bad), a copy of the inactive slot's image there when a
// delta starts from it (removed once the slot is written), the slot
// device it writes, and the ESP through a bootloader.Loader.
package upgrade

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/fetch"
	"github.com/keso-os/keso/pkg/sign"
	"github.com/keso-os/keso/pkg/verity"
)

// SlotDevice is a root slot's partition, opened for writing.
type SlotDevice interface {
	io.ReaderAt
	io.WriterAt
	Size() int64
	Sync() error
	Close() error
}

// Disk opens root slot partitions (by GPT label KESO_ROOT_A/B on a node).
type Disk interface {
	OpenSlot(slot bootloader.Slot) (SlotDevice, error)
}

// Node is what the running system knows about itself.
type Node struct {
	Version string          // running version (VERSION_ID)
	Slot    bootloader.Slot // running slot (keso.slot= on the command line)
	// Options is the running entry's kernel command line without
	// keso.slot; the new entry uses it when the image carries no
	// command line of its own.
	Options     string
	TrustedKeys []ed25519.PublicKey
	// Arch is the image's arch (/usr/share/keso/install/arch), "" if unknown.
	Arch string
}

// Request is one `keso upgrade`.
type Request struct {
	// Image is an http(s) URL, a file:// URL or a local path of a
	// keso-<version>-<arch>.squashfs; <Image>.sig must exist beside it.
	Image string
	// SHA256 is the expected digest; when empty it is read from <Image>.sha256.
	SHA256         string
	AllowDowngrade bool
	Tries          int // default bootloader.DefaultTries
	// MaxRate, if above 0, bounds the image's download to that many
	// bytes a second (fetch.Downloader.MaxRate).
	MaxRate int64
	// Stage stops once the inactive slot holds the verified image and its
	// dm-verity tree: nothing is armed, the node keeps running what it
	// runs, and Switch arms it later (stage by day, switch by night).
	Stage bool
}

// Outcome reports what an upgrade did, with the numbers worth printing.
type Outcome struct {
	FromVersion, ToVersion string
	Slot                   bootloader.Slot
	ImageBytes             int64
	Downloaded             int64 // bytes over the network (0 for a file)
	Resumed                bool
	FetchTime, VerifyTime  time.Duration
	WriteTime, ReadTime    time.Duration
	VerityTime             time.Duration // building and checking the slot's dm-verity tree
	RootHash               string        // the slot's dm-verity root hash
	KeyID                  string
	Staged                 bool // Request.Stage: written and checked, not armed
	// DeltaFrom, when the image was built from a delta, names the image
	// it was applied against ("the running slot a", "slot b's 1.0.5");
	// Downloaded then counts the delta's index and data.
	DeltaFrom string
	// Switched: the image was the one keso upgrade --stage had written;
	// it was checked in the slot and armed, nothing was fetched.
	Switched bool
}

// Delta reports whether the image was built from a delta.
func (o Outcome) Delta() bool { return o.DeltaFrom != "" }

// Upgrader carries the seams an upgrade needs.
type Upgrader struct {
	Disk    Disk
	ESP     bootloader.ESP
	Boot    bootloader.Loader // nil: systemd-boot entries on ESP (bootloader.SystemdBoot); the Pi card: bootloader.UBoot
	State   StateFS
	WorkDir string // downloads go here; on a node /var/lib/keso/upgrade
	Client  *http.Client
	Log     io.Writer
	Now     func() time.Time
}

func (u *Upgrader) logf(format string, args ...any) {
	if u.Log != nil {
		fmt.Fprintf(u.Log, "keso upgrade: "+format+"\n", args...)
	}
}

// ErrRefused wraps every reason an upgrade is refused before any write.
var ErrRefused = errors.New("upgrade refused")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}

// Run performs the upgrade up to an armed trial boot. The caller reboots.
func (u *Upgrader) Run(ctx context.Context, req Request, node Node) (Outcome, error) {
	out := Outcome{FromVersion: node.Version, Slot: node.Slot.Other()}
	if err := u.checkRunning(node); err != nil {
		return out, err
	}
	target := out.Slot
	if !req.Stage {
		if sw, ok, err := u.switchStaged(ctx, req, node); ok {
			return sw, err
		}
	}

	// 1.–2. Fetch the release (a delta from the running image when one is
	// published for it, else the full image) and verify its digest,
	// signature and version before anything is written.
	rel, err := u.fetchDelta(ctx, req, node, &out)
	if err == nil && rel == nil {
		rel, err = u.fetchFull(ctx, req, node, &out)
	}
	if err != nil {
		return out, err
	}
	defer rel.close()
	got := rel.digest
	wantRoot, err := u.signedRootHash(ctx, req.Image, node.TrustedKeys)
	if err != nil {
		return out, err
	}
	out.ToVersion = rel.version
	if c := CompareVersions(rel.version, node.Version); c <= 0 && !req.AllowDowngrade {
		if c == 0 {
			return out, refuse("version %s is already running (use --allow-downgrade to reinstall it)", rel.version)
		}
		return out, refuse("version %s is older than the running %s (use --allow-downgrade)", rel.version, node.Version)
	}

	// 3. Write the inactive slot and read it back. Its old entry goes
	// first: nothing may boot a half-written slot; nor may a staged image
	// that is being overwritten be switched to.
	if err := u.loader().Retire(target); err != nil {
		return out, fmt.Errorf("retire slot %s: %w", target, err)
	}
	st, err := LoadState(u.State)
	if err != nil {
		return out, err
	}
	if st.Staged != nil {
		st.Staged = nil
		if err := SaveState(u.State, st); err != nil {
			return out, err
		}
	}
	dev, err := u.Disk.OpenSlot(target)
	if err != nil {
		return out, fmt.Errorf("open slot %s: %w", target, err)
	}
	defer dev.Close()
	size := rel.size
	out.ImageBytes = size
	if need := verity.SlotBytes(size); dev.Size() < need {
		return out, refuse("image is %d bytes (%d with its dm-verity tree) but slot %s holds only %d", size, need, target, dev.Size())
	}
	t0 := time.Now()
	u.logf("writing slot %s", target)
	if err := rel.write(dev, u.progress("writing slot "+string(target))); err != nil {
		return out, fmt.Errorf("write slot %s: %w", target, err)
	}
	if err := dev.Sync(); err != nil {
		return out, fmt.Errorf("write slot %s: sync: %w", target, err)
	}
	out.WriteTime = time.Since(t0)
	t0 = time.Now()
	back, err := digest(dev, size)
	if err != nil {
		return out, fmt.Errorf("read back slot %s: %w", target, err)
	}
	if back != got {
		return out, fmt.Errorf("read back slot %s: sha256 %x, want %x: the disk did not keep what was written; nothing was armed", target, back, got)
	}
	out.ReadTime = time.Since(t0)
	u.logf("wrote slot %s (%d bytes in %s) and read it back", target, size, out.WriteTime.Round(time.Millisecond))
	// The kernel, initrd and command line to arm: read before writing for
	// a full download; for a delta, from the slot (its image exists
	// nowhere else), which must be the version the signed index named.
	info := rel.info
	if info == nil {
		slotInfo, err := ReadImage(dev, size)
		if err != nil {
			return out, fmt.Errorf("slot %s: %w; nothing was armed", target, err)
		}
		if slotInfo.Version != rel.version {
			return out, fmt.Errorf("slot %s holds version %s, the delta said %s; nothing was armed", target, slotInfo.Version, rel.version)
		}
		info = &slotInfo
	}

	// 3b. The slot's dm-verity tree, from the verified image (its salt is
	// derived from the signed digest, so the root hash is the one keso-build
	// computes), checked against the slot before anything is armed.
	t0 = time.Now()
	rec, err := verity.Seal(dev, size, got[:], string(target))
	if err != nil {
		return out, fmt.Errorf("slot %s: %w", target, err)
	}
	if err := dev.Sync(); err != nil {
		return out, fmt.Errorf("slot %s: sync the hash tree: %w", target, err)
	}
	if wantRoot != "" && rec.RootHash != wantRoot {
		return out, fmt.Errorf("slot %s: the dm-verity root hash is %s, but the release signed %s; nothing was armed", target, rec.RootHash, wantRoot)
	}
	tree, err := rec.Tree()
	if err == nil {
		err = verity.Verify(dev, dev, tree)
	}
	if err != nil {
		return out, fmt.Errorf("slot %s: dm-verity check of what was written: %w; nothing was armed", target, err)
	}
	initrd, err := verity.AppendToInitrd(info.Initrd, rec)
	if err != nil {
		return out, fmt.Errorf("slot %s: %w", target, err)
	}
	out.VerityTime, out.RootHash = time.Since(t0), rec.RootHash
	signed := ""
	if wantRoot != "" {
		signed = ", as the release signed it"
	}
	u.logf("slot %s: dm-verity tree written and checked in %s (root hash %s%s)", target, out.VerityTime.Round(time.Millisecond), rec.RootHash, signed)
	// Once the slot holds the image (staged or armed), the download goes;
	// a failed arm keeps it for the next attempt.
	dropDownload := func() {
		if rel.download != "" {
			os.Remove(rel.download)
		}
		u.removeSeeds()
	}
	if req.Stage {
		st.Staged = &Staged{FromVersion: node.Version, ToVersion: info.Version, Slot: target, SHA256: hex.EncodeToString(got[:]),
			Size: size, Verity: rec, StagedAt: u.now().UTC()}
		if err := SaveState(u.State, st); err != nil {
			return out, err
		}
		out.Staged = true
		dropDownload()
		u.logf("staged %s on slot %s; keso upgrade --switch arms it", info.Version, target)
		return out, nil
	}
	if err := u.arm(st, node, target, *info, initrd, req.Tries, u.now()); err != nil {
		return out, err
	}
	dropDownload()
	return out, nil
}

// arm records the pending trial of target, then arms it: the image's
// kernel and initrd (with the slot's dm-verity record) on the ESP and its
// boot entry with a try counter.
func (u *Upgrader) arm(st State, node Node, target bootloader.Slot, info ImageInfo, initrd []byte, tries int, now time.Time) error {
	st.Staged = nil
	if tries <= 0 {
		tries = bootloader.DefaultTries
	}
	st.Pending = &Pending{FromVersion: node.Version, ToVersion: info.Version, FromSlot: node.Slot, ToSlot: target, Tries: tries, ArmedAt: now.UTC()}
	if err := SaveState(u.State, st); err != nil {
		return err
	}
	// The new release's own kernel command line: a release may change it
	// (and a bad one is caught by the trial boot). Images without one keep
	// the running entry's.
	opts := node.Options
	if info.Cmdline != "" {
		opts = stripSlot(info.Cmdline)
	}
	u.logf("installing slot %s's kernel and initrd on the ESP", target)
	armed, err := u.loader().Arm(bootloader.ArmSpec{Slot: target, Kernel: info.Kernel, Initrd: initrd,
		Title: "keso " + info.Version, Options: opts, Tries: tries})
	if err != nil {
		return fmt.Errorf("arm slot %s: %w", target, err)
	}
	u.logf("armed slot %s (%s, %d tries); reboot to try it", target, armed, tries)
	u.clearProgress()
	return nil
}

// Switch arms the image keso upgrade --stage left in the inactive slot,
// after checking that the slot still holds it (its sha256 and its
// dm-verity tree) and that the node still runs the version that staged
// it. The caller reboots.
func (u *Upgrader) Switch(node Node, tries int) (Outcome, error) {
	out := Outcome{FromVersion: node.Version}
	if err := u.checkRunning(node); err != nil {
		return out, err
	}
	st, err := LoadState(u.State)
	if err != nil {
		return out, err
	}
	sg := st.Staged
	if sg == nil {
		return out, refuse("nothing is staged: run keso upgrade --stage --image URL first")
	}
	out.ToVersion, out.Slot, out.ImageBytes = sg.ToVersion, sg.Slot, sg.Size
	if sg.Slot != node.Slot.Other() || sg.FromVersion != node.Version {
		return out, refuse("%s was staged on slot %s by %s, but this is %s on slot %s: stage it again", sg.ToVersion, sg.Slot, sg.FromVersion, node.Version, node.Slot)
	}
	dev, err := u.Disk.OpenSlot(sg.Slot)
	if err != nil {
		return out, fmt.Errorf("open slot %s: %w", sg.Slot, err)
	}
	defer dev.Close()
	t0 := time.Now()
	got, err := digest(dev, sg.Size)
	if err != nil {
		return out, fmt.Errorf("read slot %s: %w", sg.Slot, err)
	}
	if hex.EncodeToString(got[:]) != sg.SHA256 {
		return out, refuse("slot %s no longer holds the staged %s (sha256 %x, want %s): stage it again", sg.Slot, sg.ToVersion, got, sg.SHA256)
	}
	tree, err := sg.Verity.Tree()
	if err == nil {
		err = verity.Verify(dev, dev, tree)
	}
	if err != nil {
		return out, refuse("slot %s: dm-verity check of the staged image: %v: stage it again", sg.Slot, err)
	}
	out.ReadTime = time.Since(t0)
	info, err := ReadImage(dev, sg.Size)
	if err != nil {
		return out, refuse("slot %s: %v", sg.Slot, err)
	}
	initrd, err := verity.AppendToInitrd(info.Initrd, sg.Verity)
	if err != nil {
		return out, fmt.Errorf("slot %s: %w", sg.Slot, err)
	}
	out.RootHash = sg.Verity.RootHash
	u.logf("slot %s holds the staged %s (sha256 and dm-verity tree checked in %s)", sg.Slot, sg.ToVersion, out.ReadTime.Round(time.Millisecond))
	return out, u.arm(st, node, sg.Slot, info, initrd, tries, u.now())
}

// switchStaged arms what keso upgrade --stage left in the inactive slot
// when it is the requested image (the same sha256): the night's half of
// stage by day, switch by night is the same command as an upgrade that
// was never staged, and fetches nothing. It reports false when there is
// no such staged image, or when the slot no longer holds it intact: the
// upgrade then fetches the image as if nothing had been staged.
func (u *Upgrader) switchStaged(ctx context.Context, req Request, node Node) (Outcome, bool, error) {
	st, err := LoadState(u.State)
	if err != nil || st.Staged == nil {
		return Outcome{}, false, nil
	}
	sg := st.Staged
	want, err := u.wantedSHA256(ctx, req)
	if err != nil {
		return Outcome{}, false, nil
	}
	if want != sg.SHA256 {
		u.logf("slot %s holds the staged %s (sha256 %s), not the requested image (sha256 %s): fetching it", sg.Slot, sg.ToVersion, sg.SHA256, want)
		return Outcome{}, false, nil
	}
	out, err := u.Switch(node, req.Tries)
	if errors.Is(err, ErrRefused) {
		u.logf("%v; fetching the image instead", err)
		return Outcome{}, false, nil
	}
	out.Switched = true
	return out, true, err
}

// signedRootHash reads the dm-verity root hash the release publishes and
// signs beside the image (<image>.verity, .verity.sig) and checks its
// signature; the slot's tree must come out with that root hash. A release
// without them (built before keso had dm-verity) gives "": the root hash is
// then only derived from the signed image.
func (u *Upgrader) signedRootHash(ctx context.Context, image string, keys []ed25519.PublicKey) (string, error) {
	b, err := u.fetchSmall(ctx, image+".verity")
	if notPublished(err) {
		u.logf("%s.verity is not published: the slot's dm-verity root hash is derived from the signed image only", image)
		return "", nil
	}
	if err != nil {
		return "", refuse("root hash %s.verity cannot be read: %v", image, err)
	}
	want := strings.ToLower(firstField(b))
	raw, err := hex.DecodeString(want)
	if err != nil || len(raw) != sha256.Size {
		return "", refuse("%s.verity: %q is not a sha256 root hash", image, want)
	}
	sig, err := u.fetchSmall(ctx, image+".verity.sig")
	if err != nil {
		return "", refuse("root hash signature %s.verity.sig cannot be read: %v", image, err)
	}
	if _, err := sign.VerifyVerityRoot(sig, [sha256.Size]byte(raw), keys); err != nil {
		return "", refuse("root hash %s.verity: %v", image, err)
	}
	return want, nil
}

func (u *Upgrader) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

// checkRunning refuses an upgrade of a node that cannot take one: not
// installed (no slot), or itself on trial.
func (u *Upgrader) checkRunning(node Node) error {
	if !node.Slot.Valid() {
		return refuse("the running slot is unknown (no keso.slot= on the kernel command line): upgrades need an installed system")
	}
	return u.checkNotOnTrial(node.Slot)
}

func (u *Upgrader) checkNotOnTrial(running bootloader.Slot) error {
	return checkTrial(u.loader(), running)
}

// fetchImage returns a local path of src: src itself when it is a local
// file, else a download into WorkDir named local (default: src's base name),
// telling progress how far it got.
func (u *Upgrader) fetchImage(ctx context.Context, src, local string, maxRate int64, progress fetch.Progress) (string, fetch.Result, error) {
	if p, ok := localPath(src); ok {
		fi, err := os.Stat(p)
		if err != nil {
			return "", fetch.Result{}, refuse("image %s: %v", src, err)
		}
		return p, fetch.Result{Bytes: fi.Size()}, nil
	}
	if err := os.MkdirAll(u.WorkDir, 0o700); err != nil {
		return "", fetch.Result{}, fmt.Errorf("fetch %s: %w", src, err)
	}
	if local == "" {
		local = path.Base(src)
	}
	dst := filepath.Join(u.WorkDir, local)
	d := &fetch.Downloader{Client: u.Client, MaxRate: maxRate, Progress: progress}
	res, err := d.Download(ctx, src, dst)
	if err != nil {
		return "", res, fmt.Errorf("fetch image: %w", err)
	}
	u.logf("fetched %s: %d bytes (%d over the network, resumed=%v)", src, res.Bytes, res.Downloaded, res.Resumed)
	return dst, res, nil
}

func (u *Upgrader) fetchSmall(ctx context.Context, src string) ([]byte, error) {
	return u.fetchUpTo(ctx, src, 1<<16)
}

// fetchUpTo reads src whole, refusing more than limit bytes.
func (u *Upgrader) fetchUpTo(ctx context.Context, src string, limit int64) ([]byte, error) {
	if p, ok := localPath(src); ok {
		return os.ReadFile(p)
	}
	b, _, err := fetch.Get(ctx, u.Client, fetch.Retry{Budget: 30 * time.Second}, src, nil, limit)
	return b, err
}

func localPath(src string) (string, bool) {
	if p, ok := strings.CutPrefix(src, "file://"); ok {
		return p, true
	}
	return src, !strings.Contains(src, "://")
}

func firstField(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	if sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			return f[0]
		}
	}
	return ""
}

func digest(r io.ReaderAt, size int64) ([sha256.Size]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return [sha256.Size]byte{}, err
	}
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}

// progress returns a callback that logs what of a long step is done, at
// every tenth.
func (u *Upgrader) progress(what string) func(done, total int64) {
	last := int64(0)
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		if tenth := done * 10 / total; tenth > last && tenth < 10 {
			last = tenth
			u.logf("%s: %d%%", what, tenth*10)
		}
	}
}

func copyAt(dst io.WriterAt, src io.ReaderAt, size int64, progress func(done, total int64)) error {
	buf := make([]byte, 4<<20)
	for off := int64(0); off < size; {
		n, err := src.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if n > 0 {
			if _, werr := dst.WriteAt(buf[:n], off); werr != nil {
				return werr
			}
			off += int64(n)
			progress(off, size)
		}
		if err != nil && !(errors.Is(err, io.EOF) && off == size) {
			return err
		}
	}
	return nil
}
