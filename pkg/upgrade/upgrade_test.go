package upgrade

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/sign"
	"github.com/keso-os/keso/pkg/verity"
)

// makeImage builds a real root squashfs with mksquashfs (as keso-build
// does) holding os-release, a kernel and an initrd for version.
func makeImage(t *testing.T, dir, version string) string {
	t.Helper()
	return makeImageWith(t, dir, version, nil)
}

// makeImageWith is makeImage with extra files (path: content).
func makeImageWith(t *testing.T, dir, version string, extra map[string]string) string {
	t.Helper()
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("SKIPPED: mksquashfs not installed (apt-get install squashfs-tools; scripts/deps.sh installs it)")
	}
	root := filepath.Join(dir, "root-"+version)
	files := map[string]string{
		"etc/os-release": fmt.Sprintf("NAME=keso\nID=keso\nVERSION_ID=%s\nPRETTY_NAME=\"keso %s\"\n", version, version),
		"boot/vmlinuz":   "kernel-" + version + strings.Repeat("k", 200000),
		"boot/initrd":    "initrd-" + version,
		// The release's command line (keso-build writes it); the slot
		// it names is the builder's default and must be replaced.
		"usr/share/keso/install/cmdline": "console=ttyS0 panic=10 keso.slot=a release=" + version + "\n",
	}
	for p, c := range extra {
		files[p] = c
	}
	for p, c := range files {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(root, p), []byte(c), 0o644))
	}
	img := filepath.Join(dir, "keso-"+version+"-amd64.squashfs")
	out, err := exec.Command("mksquashfs", root, img, "-noappend", "-quiet", "-all-root", "-comp", "zstd", "-b", "256K").CombinedOutput()
	if err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	return img
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// publish writes <img>.sha256 and <img>.sig as keso-build does.
func publish(t *testing.T, img string, priv ed25519.PrivateKey) {
	t.Helper()
	data, err := os.ReadFile(img)
	must(t, err)
	sum := sha256.Sum256(data)
	must(t, os.WriteFile(img+".sha256", []byte(hex.EncodeToString(sum[:])+"  "+filepath.Base(img)+"\n"), 0o644))
	must(t, os.WriteFile(img+".sig", sign.Sign(priv, sum), 0o644))
}

// fileDisk keeps each slot in a file of a fixed size.
type fileDisk struct {
	dir  string
	size int64
}

type fileSlot struct{ *os.File }

func (f fileSlot) Size() int64 { fi, _ := f.Stat(); return fi.Size() }

func (d fileDisk) path(s bootloader.Slot) string { return filepath.Join(d.dir, "slot-"+string(s)) }

func (d fileDisk) OpenSlot(s bootloader.Slot) (SlotDevice, error) {
	f, err := os.OpenFile(d.path(s), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(d.size); err != nil {
		return nil, err
	}
	return fileSlot{f}, nil
}

type fixture struct {
	dir   string
	esp   host.FS
	state host.FS
	disk  fileDisk
	pub   ed25519.PublicKey
	priv  ed25519.PrivateKey
	node  Node
	log   bytes.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	pub, priv, err := sign.GenerateKey(nil)
	must(t, err)
	f := &fixture{dir: dir, esp: host.FS{Root: filepath.Join(dir, "esp")}, state: host.FS{Root: filepath.Join(dir, "state")},
		disk: fileDisk{dir: dir, size: 8 << 20}, pub: pub, priv: priv}
	must(t, f.esp.WriteFileAtomic(bootloader.KernelPath("a"), []byte("kernel-1.0.0"), 0o644))
	must(t, f.esp.WriteFileAtomic(bootloader.InitrdPath("a"), []byte("initrd-1.0.0"), 0o644))
	must(t, f.esp.WriteFileAtomic(bootloader.EntriesDir+"/slot-a.conf", bootloader.Render(bootloader.EntrySpec{Slot: "a", Version: 1, Title: "keso 1.0.0", Options: "console=ttyS0"}), 0o644))
	f.node = Node{Version: "1.0.0", Slot: "a", Options: "console=ttyS0 panic=10", TrustedKeys: []ed25519.PublicKey{pub}}
	return f
}

func (f *fixture) upgrader() *Upgrader {
	return &Upgrader{Disk: f.disk, ESP: f.esp, State: f.state, WorkDir: filepath.Join(f.dir, "work"), Log: &f.log,
		Now: func() time.Time { return time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC) }}
}

// release builds and signs the image of version in f.dir and serves
// f.dir over HTTP until the test ends; it returns the image's path and URL.
func (f *fixture) release(t *testing.T, version string) (img, url string) {
	t.Helper()
	img = makeImage(t, f.dir, version)
	return img, f.serve(t, img)
}

// serve signs img (in f.dir) and serves f.dir over HTTP until the test
// ends; it returns img's URL.
func (f *fixture) serve(t *testing.T, img string) string {
	t.Helper()
	publish(t, img, f.priv)
	srv := httptest.NewServer(http.FileServer(http.Dir(f.dir)))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(img)
}

func TestUpgradeOverHTTPThenCommit(t *testing.T) {
	f := newFixture(t)
	img, url := f.release(t, "1.1.0")
	out, err := f.upgrader().Run(context.Background(), Request{Image: url}, f.node)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, f.log.String())
	}
	checkWroteSlotB(t, f, img, out)

	// The firmware boots the trial; the agent sees a trial and commits.
	e, err := bootloader.Boot(f.esp)
	must(t, err)
	if e.Slot != "b" {
		t.Fatalf("booted %s, want b", e.Slot)
	}
	if got, want := e.Options, "console=ttyS0 panic=10 release=1.1.0 keso.slot=b"; got != want {
		t.Errorf("trial entry options = %q, want the new release's command line %q", got, want)
	}
	bs, err := Assess(f.esp, f.state, "b", "1.1.0", time.Now())
	must(t, err)
	if !bs.Trial || bs.Committed || bs.TriesLeft != 2 {
		t.Errorf("trial status = %+v, want trial with 2 tries left", bs)
	}
	must(t, MarkHealthy(f.esp, f.state, "b", "1.1.0", time.Now()))
	bs, err = Assess(f.esp, f.state, "b", "1.1.0", time.Now())
	must(t, err)
	if bs.Trial || !bs.Committed || bs.LastCommit == nil || bs.LastCommit.Version != "1.1.0" {
		t.Errorf("after commit = %+v", bs)
	}
	for i := 0; i < 4; i++ {
		if e, _ := bootloader.Boot(f.esp); e.Slot != "b" {
			t.Fatalf("boot %d after commit = %s, want b", i, e.Slot)
		}
	}
}

func TestFailedTrialRollsBackWithReason(t *testing.T) {
	f := newFixture(t)
	img := makeImage(t, f.dir, "1.1.0")
	publish(t, img, f.priv)
	if _, err := f.upgrader().Run(context.Background(), Request{Image: img}, f.node); err != nil {
		t.Fatal(err)
	}
	for try := 1; try <= 3; try++ {
		e, _ := bootloader.Boot(f.esp)
		if e.Slot != "b" {
			t.Fatalf("try %d booted %s, want b", try, e.Slot)
		}
		must(t, RecordFailure(f.state, fmt.Sprintf("k3s exited (try %d)", try)))
	}
	e, _ := bootloader.Boot(f.esp)
	if e.Slot != "a" {
		t.Fatalf("after 3 failed tries booted %s, want a", e.Slot)
	}
	bs, err := Assess(f.esp, f.state, "a", "1.0.0", time.Now())
	must(t, err)
	if bs.LastRollback == nil || bs.LastRollback.FromVersion != "1.1.0" || !strings.Contains(bs.LastRollback.Reason, "k3s exited (try 3)") {
		t.Errorf("rollback = %+v", bs.LastRollback)
	}
	if !bs.Committed || bs.Trial {
		t.Errorf("status on a = %+v, want committed", bs)
	}
}

func TestTamperingIsRefusedBeforeAnyWrite(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(img string)
	}{
		{"image byte flipped", func(img string) { flip(t, img, -1) }},
		{"signature byte flipped", func(img string) { flip(t, img+".sig", 20) }},
		{"signed by another key", func(img string) {
			_, other, _ := sign.GenerateKey(nil)
			data, _ := os.ReadFile(img)
			os.WriteFile(img+".sig", sign.Sign(other, sha256.Sum256(data)), 0o644)
		}},
		{"signature missing", func(img string) { os.Remove(img + ".sig") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			img := makeImage(t, f.dir, "1.1.0")
			publish(t, img, f.priv)
			tt.tamper(img)
			espBefore := snapshot(t, f.esp.Root)
			_, err := f.upgrader().Run(context.Background(), Request{Image: img}, f.node)
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("err = %v, want a refusal", err)
			}
			if slot, _ := os.ReadFile(f.disk.path("b")); !bytes.Equal(slot, make([]byte, len(slot))) {
				t.Errorf("slot b was written")
			}
			if got := snapshot(t, f.esp.Root); got != espBefore {
				t.Errorf("ESP changed:\n%s\nwas\n%s", got, espBefore)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	old := makeImage(t, f.dir, "0.9.0")
	publish(t, old, f.priv)
	same := makeImage(t, f.dir, "1.0.0")
	publish(t, same, f.priv)
	u := f.upgrader()
	if _, err := u.Run(context.Background(), Request{Image: old}, f.node); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "older") {
		t.Errorf("downgrade: err = %v, want refused as older", err)
	}
	if _, err := u.Run(context.Background(), Request{Image: same}, f.node); !errors.Is(err, ErrRefused) {
		t.Errorf("same version: err = %v, want refused", err)
	}
	if _, err := u.Run(context.Background(), Request{Image: old, AllowDowngrade: true}, f.node); err != nil {
		t.Errorf("downgrade with --allow-downgrade: %v", err)
	}
	// Now b is on trial; upgrading from it is refused.
	bootloader.Boot(f.esp)
	trialNode := f.node
	trialNode.Slot, trialNode.Version = "b", "0.9.0"
	newer := makeImage(t, f.dir, "2.0.0")
	publish(t, newer, f.priv)
	if _, err := u.Run(context.Background(), Request{Image: newer}, trialNode); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "on trial") {
		t.Errorf("upgrade during a trial: err = %v, want refused", err)
	}
	small := newFixture(t)
	small.disk.size = 1024
	if _, err := small.upgrader().Run(context.Background(), Request{Image: newer, SHA256: sumHex(t, newer)}, withKey(small.node, f.pub)); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "holds only") {
		t.Errorf("slot too small: err = %v, want refused", err)
	}
}

// checkWroteSlotB asserts that an upgrade to img (1.1.0, over HTTP) wrote
// slot b and its kernel on the boot partition.
func checkWroteSlotB(t *testing.T, f *fixture, img string, out Outcome) {
	t.Helper()
	imgData, _ := os.ReadFile(img)
	if out.ToVersion != "1.1.0" || out.Slot != "b" || out.ImageBytes != int64(len(imgData)) || out.Downloaded != int64(len(imgData)) {
		t.Errorf("outcome = %+v", out)
	}
	slot, _ := os.ReadFile(f.disk.path("b"))
	if !bytes.Equal(slot[:len(imgData)], imgData) {
		t.Errorf("slot b does not hold the image")
	}
	k, _ := f.esp.ReadFile(bootloader.KernelPath("b"))
	if !bytes.HasPrefix(k, []byte("kernel-1.1.0")) {
		t.Errorf("boot partition kernel for b = %.20q, want the new release's", k)
	}
}

func withKey(n Node, k ed25519.PublicKey) Node { n.TrustedKeys = []ed25519.PublicKey{k}; return n }

func sumHex(t *testing.T, p string) string {
	data, err := os.ReadFile(p)
	must(t, err)
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func flip(t *testing.T, p string, off int64) {
	t.Helper()
	data, err := os.ReadFile(p)
	must(t, err)
	if off < 0 {
		off = int64(len(data) / 2)
	}
	data[off] ^= 0x01
	must(t, os.WriteFile(p, data, 0o644))
}

func snapshot(t *testing.T, root string) string {
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, "%s %x\n", strings.TrimPrefix(p, root), sha256.Sum256(data))
		}
		return nil
	})
	return b.String()
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"1.10.0", "1.9.2", 1},
		{"v1.2.0", "1.2.0", 0},
		{"1.2.0-rc1", "1.2.0", -1},
		{"1.2.0-rc2", "1.2.0-rc1", 1},
		{"1.2", "1.2.0", 0},
		{"2", "10", -1},
		{"0.1.0-dev", "0.1.0", -1},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// A power cut after the pending upgrade was recorded but before its entry
// was renamed into place: the old slot boots, and Assess reports an
// interrupted upgrade, not a rollback.
func TestInterruptedBeforeArmIsNotARollback(t *testing.T) {
	f := newFixture(t)
	st := State{Pending: &Pending{FromVersion: "1.0.0", ToVersion: "1.1.0", FromSlot: "a", ToSlot: "b", Tries: 3}}
	must(t, SaveState(f.state, st))
	// Arm's temporary entry, left behind by the cut.
	must(t, f.esp.WriteFileAtomic(bootloader.EntriesDir+"/.slot-b.conf.tmp", []byte("title keso 1.1.0\n"), 0o644))
	bs, err := Assess(f.esp, f.state, "a", "1.0.0", time.Now())
	must(t, err)
	if bs.LastRollback != nil {
		t.Errorf("rollback recorded for an upgrade that never armed: %+v", bs.LastRollback)
	}
	if !strings.Contains(bs.Interrupted, "upgrade to 1.1.0 (slot b") {
		t.Errorf("Interrupted = %q, want it to name the upgrade", bs.Interrupted)
	}
	got, err := LoadState(f.state)
	must(t, err)
	if got.Pending != nil {
		t.Errorf("pending upgrade kept: %+v", got.Pending)
	}
}

// TestReadImageMalformed: a squashfs whose metadata references point past
// the image made go-diskfs panic (slice bounds out of range in
// readMetadata); ReadImage reports it as an error instead. The image is
// the crasher FuzzReadImage found, a 529-byte mutation of
// testdata/tiny-gzip.squashfs.
func TestReadImageMalformed(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzReadImage", "7a713f2495b6d9be"))
	if err != nil {
		t.Fatal(err)
	}
	// "go test fuzz v1\n[]byte(\"...\")\n"
	_, lit, _ := strings.Cut(strings.TrimSpace(string(raw)), "\n")
	img, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lit, "[]byte("), ")"))
	if err != nil {
		t.Fatalf("crasher file: %v", err)
	}
	info, err := ReadImage(strings.NewReader(img), int64(len(img)))
	if err == nil || !strings.Contains(err.Error(), "read image: malformed squashfs") {
		t.Errorf("ReadImage(malformed squashfs) = %+v, %v; want a malformed squashfs error", info, err)
	}
}

// publishRoot writes the release's signed dm-verity root hash beside img:
// root (hex) signed by priv.
func publishRoot(t *testing.T, img, root string, priv ed25519.PrivateKey) {
	t.Helper()
	raw, err := hex.DecodeString(root)
	must(t, err)
	must(t, os.WriteFile(img+".verity", []byte(root+"  "+filepath.Base(img)+"\n"), 0o644))
	must(t, os.WriteFile(img+".verity.sig", sign.SignVerityRoot(priv, [sha256.Size]byte(raw)), 0o644))
}

// TestUpgradeSignedRootHash: the slot's tree must have the root hash the
// release signs (.verity, .verity.sig); a forged one is refused before
// anything is written, a signed wrong one stops before arming, and a
// release without one is upgraded (older builds).
func TestUpgradeSignedRootHash(t *testing.T) {
	f0 := newFixture(t)
	img := makeImage(t, f0.dir, "1.1.0")
	publish(t, img, f0.priv)
	// What keso-build computes for the image, whatever the slot.
	rec, err := verity.SealFile(img, filepath.Join(t.TempDir(), "slot.img"), "b")
	must(t, err)
	_, otherPriv, err := sign.GenerateKey(nil)
	must(t, err)
	for _, tc := range []struct {
		name    string
		publish func()
		want    string // "" for success
		armed   bool
	}{
		{"no root hash published", func() { os.Remove(img + ".verity"); os.Remove(img + ".verity.sig") }, "", true},
		{"signed root hash", func() { publishRoot(t, img, rec.RootHash, f0.priv) }, "", true},
		{"root hash signed by an untrusted key", func() { publishRoot(t, img, rec.RootHash, otherPriv) }, "refused", false},
		{"signed wrong root hash", func() { publishRoot(t, img, strings.Repeat("ab", 32), f0.priv) }, "but the release signed abab", false},
		{"root hash without its signature", func() { publishRoot(t, img, rec.RootHash, f0.priv); os.Remove(img + ".verity.sig") }, "refused", false},
	} {
		f := newFixture(t)
		f.priv, f.pub, f.node.TrustedKeys = f0.priv, f0.pub, f0.node.TrustedKeys
		tc.publish()
		_, err := f.upgrader().Run(context.Background(), Request{Image: img}, f.node)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v\n%s", tc.name, err, f.log.String())
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
		entries, _ := bootloader.Entries(f.esp)
		armed := false
		for _, e := range entries {
			armed = armed || e.Slot == "b"
		}
		if armed != tc.armed {
			t.Errorf("%s: slot b armed = %v, want %v", tc.name, armed, tc.armed)
		}
	}
}
