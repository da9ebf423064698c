package build

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keso-os/keso/pkg/delta"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/image/profile"
	"github.com/keso-os/keso/pkg/image/raw"

	"github.com/keso-os/keso/pkg/sign"
	"github.com/keso-os/keso/pkg/status"
	"github.com/keso-os/keso/pkg/verity"
)

const kver = "6.1.0-99-cloud-amd64"

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: host tool %s not installed (scripts/deps.sh installs it)", tool)
		}
	}
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// koELF returns a minimal ELF64 relocatable object with a .modinfo section,
// which is all the builder reads from a kernel module.
func koELF(modinfo string) []byte {
	info := []byte(modinfo)
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	infoOff := ehsize
	strOff := infoOff + len(info)
	shOff := (strOff + len(shstr) + 7) &^ 7
	b := make([]byte, shOff+3*shentsize)
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	le := binary.LittleEndian
	le.PutUint16(b[16:], 1)  // ET_REL
	le.PutUint16(b[18:], 62) // x86-64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[40:], uint64(shOff))
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[58:], shentsize)
	le.PutUint16(b[60:], 3)
	le.PutUint16(b[62:], 2)
	copy(b[infoOff:], info)
	copy(b[strOff:], shstr)
	sh := func(i int, name uint32, typ uint32, off, size int) {
		h := b[shOff+i*shentsize:]
		le.PutUint32(h[0:], name)
		le.PutUint32(h[4:], typ)
		le.PutUint64(h[24:], uint64(off))
		le.PutUint64(h[32:], uint64(size))
		le.PutUint64(h[48:], 1)
	}
	sh(1, 1, 1, infoOff, len(info))  // .modinfo PROGBITS
	sh(2, 10, 3, strOff, len(shstr)) // .shstrtab STRTAB
	return b
}

// mkdeb builds a .deb with dpkg-deb from files (path -> content).
func mkdeb(t *testing.T, out, name, version, arch, depends string, files map[string][]byte) {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755)
	ctl := "Package: " + name + "\nVersion: " + version + "\nArchitecture: " + arch + "\nMaintainer: t <t@example.org>\nDescription: test\n"
	if depends != "" {
		ctl += "Depends: " + depends + "\n"
	}
	os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(ctl), 0o644)
	for p, c := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), c, 0o644)
	}
	run(t, "", "dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, filepath.Join(out, name+"_"+version+"_"+arch+".deb"))
}

func readHost(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("SKIP: %s missing (packages isolinux, syslinux-common): %v", p, err)
	}
	return b
}

type fixture struct {
	prof *profile.Profile
	opts Options
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	need(t, "dpkg-deb", "mksquashfs", "mke2fs")
	dir := t.TempDir()
	debs := filepath.Join(dir, "debs")
	os.MkdirAll(debs, 0o755)
	mod := "lib/modules/" + kver + "/"
	mkdeb(t, debs, "linux-image-cloud-amd64", "1.0-1", "amd64", "linux-image-"+kver+" (= 1.0-1)", map[string][]byte{"usr/share/doc/x/README": []byte("meta")})
	mkdeb(t, debs, "linux-image-"+kver, "1.0-1", "amd64", "", map[string][]byte{
		"boot/vmlinuz-" + kver:                       bytes.Repeat([]byte("vmlinuz"), 100000),
		mod + "kernel/drivers/virtio/virtio.ko":      koELF("license=GPL\x00depends=\x00name=virtio\x00"),
		mod + "kernel/drivers/virtio/virtio_ring.ko": koELF("depends=virtio\x00"),
		mod + "kernel/drivers/block/virtio_blk.ko":   koELF("depends=virtio,virtio_ring\x00"),
		mod + "kernel/fs/squashfs/squashfs.ko":       koELF("depends=\x00"),
		mod + "kernel/fs/overlayfs/overlay.ko":       koELF("depends=\x00"),
		mod + "kernel/net/bridge/bridge.ko":          koELF("depends=\x00"),
		mod + "kernel/net/bridge/br_netfilter.ko":    koELF("depends=bridge\x00"),
		mod + "modules.builtin":                      []byte("kernel/fs/ext4/ext4.ko\n"),
	})
	mkdeb(t, debs, "ca-certificates", "1", "all", "", map[string][]byte{
		"usr/share/ca-certificates/mozilla/B.crt": []byte("-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n"),
		"usr/share/ca-certificates/mozilla/A.crt": []byte("-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n"),
	})
	mkdeb(t, debs, "systemd-boot-efi", "252-1", "amd64", "", map[string][]byte{"usr/lib/systemd/boot/efi/systemd-bootx64.efi": []byte("MZ fake systemd-boot")})
	mkdeb(t, debs, "isolinux", "3:6.04-1", "all", "", map[string][]byte{
		"usr/lib/ISOLINUX/isolinux.bin": readHost(t, "/usr/lib/ISOLINUX/isolinux.bin"),
		"usr/lib/ISOLINUX/isohdpfx.bin": readHost(t, "/usr/lib/ISOLINUX/isohdpfx.bin"),
	})
	mkdeb(t, debs, "syslinux-common", "3:6.04-1", "all", "", map[string][]byte{
		"usr/lib/syslinux/modules/bios/ldlinux.c32": readHost(t, "/usr/lib/syslinux/modules/bios/ldlinux.c32"),
	})
	bin := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o755)
		return p
	}
	prof, err := profile.Parse([]byte(`
name: test
arch: amd64
version: 9.9.9
kernel: {package: linux-image-cloud-amd64, deb_arch: amd64}
initrd_modules: [virtio_blk, squashfs, overlay, ext4]
modules: [br_netfilter]
ca_certificates: {package: ca-certificates, deb_arch: all}
k3s: {version: v1.31.4+k3s1, url: "http://127.0.0.1:1/k3s", sha256: "0000000000000000000000000000000000000000000000000000000000000000"}
bootloader:
  uefi: {package: systemd-boot-efi, deb_arch: amd64, file: usr/lib/systemd/boot/efi/systemd-bootx64.efi}
  bios: {isolinux: {package: isolinux, deb_arch: all}, syslinux: {package: syslinux-common, deb_arch: all}}
cmdline: console=ttyS0,115200 panic=10
outputs: [squashfs, vmlinuz, initrd, iso, raw, netboot]
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{prof: prof, opts: Options{
		Profile: prof, RepoDir: "../../..", CacheDir: filepath.Join(dir, "cache"), DebDirs: []string{debs},
		K3s: bin("k3s", string(exeELF(elf.ELFCLASS64, elf.EM_X86_64, elf.ET_EXEC, "stand-in "+TestFixtureMarker))), TestFixture: true, Epoch: 1700000000,
		InitBinary: bin("keso-init", "fake init"), KesoBinary: bin("keso", "fake keso"), Userland: bin("bb", "fake bb"),
		RootSizeMiB: 32, NetbootURL: "http://10.0.2.2:8080",
	}}
}

// TestBuildReproducibleAndValid builds twice from the same inputs and checks
// that every artifact is byte-identical, then checks what was written with
// independent tools (sgdisk, fsck.vfat, fsck.ext4, unsquashfs, xorriso, cpio).
func TestBuildReproducibleAndValid(t *testing.T) {
	need(t, "sgdisk", "fsck.vfat", "fsck.ext4", "unsquashfs", "xorriso", "cpio", "sha256sum", "mtype")
	f := newFixture(t)
	ctx := context.Background()
	outs := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")}
	pub, key, err := sign.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{42}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	ext := t.TempDir() // an extra tree (keso-build --extra)
	os.MkdirAll(filepath.Join(ext, "usr/libexec/fixture"), 0o750)
	os.WriteFile(filepath.Join(ext, "usr/libexec/fixture/agent"), []byte("agent"), 0o755)
	os.MkdirAll(filepath.Join(ext, "usr/bin"), 0o755)
	os.Symlink("../libexec/fixture/agent", filepath.Join(ext, "usr/bin/agent"))
	var sums [][]byte
	for _, out := range outs {
		o := f.opts
		o.OutDir = out
		o.SignKey = key
		o.Extra = []string{ext}
		m, err := Build(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if m.K3s == nil || m.K3s.Provenance != status.ProvenanceTestFixture || m.K3s.Source != o.K3s {
			t.Errorf("manifest k3s = %+v, want a test fixture from %s", m.K3s, o.K3s)
		}
		if len(m.Artifacts) != 14 {
			t.Errorf("artifacts = %d, want 14: %+v", len(m.Artifacts), m.Artifacts)
		}
		b, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, b)
	}
	if !bytes.Equal(sums[0], sums[1]) {
		t.Fatalf("two builds differ:\n%s\n---\n%s", sums[0], sums[1])
	}
	out := outs[0]
	run(t, out, "sha256sum", "--quiet", "-c", "SHA256SUMS")

	// The upgrade artifact verifies with the key the image trusts.
	up := filepath.Join(out, UpgradeImageName(f.prof.Version, "amd64"))
	run(t, out, "sha256sum", "--quiet", "-c", filepath.Base(up)+".sha256")
	upData, err := os.ReadFile(up)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(up + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.Verify(sig, sha256.Sum256(upData), []ed25519.PublicKey{pub}); err != nil {
		t.Errorf("upgrade image signature: %v", err)
	}
	// Its dm-verity root hash is signed, and is the tree's of the raw
	// disk's slot A (and what a node computes: the same derivation).
	rootLine, err := os.ReadFile(up + ".verity")
	if err != nil {
		t.Fatal(err)
	}
	rootSig, err := os.ReadFile(up + ".verity.sig")
	if err != nil {
		t.Fatal(err)
	}
	rootHex := strings.Fields(string(rootLine))[0]
	rootRaw, err := hex.DecodeString(rootHex)
	if err != nil || len(rootRaw) != sha256.Size {
		t.Fatalf("%s.verity: %q is not a root hash", up, rootLine)
	}
	if _, err := sign.VerifyVerityRoot(rootSig, [sha256.Size]byte(rootRaw), []ed25519.PublicKey{pub}); err != nil {
		t.Errorf("root hash signature: %v", err)
	}
	want, err := verity.SealFile(up, filepath.Join(t.TempDir(), "slot.img"), "a")
	if err != nil || want.RootHash != rootHex {
		t.Errorf("published root hash %s, the image's tree has %s (%v)", rootHex, want.RootHash, err)
	}

	// root squashfs
	sq := filepath.Join(out, "keso-amd64.squashfs")
	run(t, "", "unsquashfs", "-s", sq)
	ls := run(t, "", "unsquashfs", "-lls", sq)
	for _, want := range []string{
		"squashfs-root/sbin/init -> ../usr/sbin/keso-init", "squashfs-root/usr/sbin/keso-init",
		"squashfs-root/sbin/modprobe -> ../usr/sbin/keso-init", "squashfs-root/lib/modules/" + kver + "/modules.alias",
		"squashfs-root/usr/bin/keso", "squashfs-root/usr/bin/k3os -> keso", "squashfs-root/usr/local/bin/k3s", "squashfs-root/bin/sh -> gosh",
		"squashfs-root/bin/ls -> u-root", "squashfs-root/etc/os-release", "squashfs-root/etc/ssl/certs/ca-certificates.crt",
		"squashfs-root/boot/vmlinuz", "squashfs-root/boot/initrd",
		"squashfs-root/lib/modules/" + kver + "/kernel/net/bridge/br_netfilter.ko",
		"squashfs-root/lib/modules/" + kver + "/modules.dep", "squashfs-root/keso/state",
		"squashfs-root/usr/share/keso/images/keso-operator-amd64.tar",
		"squashfs-root/usr/share/keso/keys/release.pub", "squashfs-root/usr/share/keso/install/state.ext4",
		"squashfs-root/usr/share/keso/install/loader.efi", "squashfs-root/usr/share/keso/install/cmdline",
		"squashfs-root/usr/bin/agent -> ../libexec/fixture/agent",
	} {
		if !strings.Contains(ls, want) {
			t.Errorf("root lacks %s", want)
		}
	}
	for _, l := range strings.Split(ls, "\n") { // the extra tree's modes and times
		for name, want := range map[string]string{"usr/libexec/fixture": "drwxr-x--- root/root", "usr/libexec/fixture/agent": "-rwxr-xr-x root/root"} {
			if strings.HasSuffix(l, " squashfs-root/"+name) && (!strings.HasPrefix(l, want) || !strings.Contains(l, " 2023-11-14 22:13 ")) {
				t.Errorf("%s: %q, want %q and the epoch's time", name, l, want)
			}
		}
	}
	if !strings.Contains(ls, "squashfs-root/usr/libexec/fixture/agent\n") {
		t.Error("root lacks the extra tree's usr/libexec/fixture/agent")
	}
	if strings.Contains(ls, "initrd-release") {
		t.Error("root must not carry /etc/initrd-release (keso-init would run the initrd stage)")
	}
	x := t.TempDir()
	run(t, "", "unsquashfs", "-d", filepath.Join(x, "r"), sq, "etc/os-release", "lib/modules/"+kver+"/modules.dep", "etc/ssl/certs/ca-certificates.crt", K3sImagePath)
	k3s, err := status.ReadK3sBinary(host.FS{Root: filepath.Join(x, "r")})
	if err != nil || k3s == nil || k3s.Provenance != status.ProvenanceTestFixture || len(k3s.SHA256) != 64 || k3s.Source != "" {
		t.Errorf("image's %s = %+v, %v; want a test fixture with its sha256 and no host path", status.K3sBinaryPath, k3s, err)
	}
	osr, _ := os.ReadFile(filepath.Join(x, "r", "etc", "os-release"))
	if !strings.Contains(string(osr), `PRETTY_NAME="keso 9.9.9"`) {
		t.Errorf("os-release = %q", osr)
	}
	dep, _ := os.ReadFile(filepath.Join(x, "r", "lib", "modules", kver, "modules.dep"))
	if !strings.Contains(string(dep), "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n") {
		t.Errorf("modules.dep:\n%s", dep)
	}
	ca, _ := os.ReadFile(filepath.Join(x, "r", "etc", "ssl", "certs", "ca-certificates.crt"))
	if !strings.HasPrefix(string(ca), "-----BEGIN CERTIFICATE-----\nA\n") {
		t.Errorf("CA bundle not in name order: %q", ca)
	}

	// initrd
	ir, _ := os.Open(filepath.Join(out, "initrd"))
	zr, err := gzip.NewReader(ir)
	if err != nil {
		t.Fatalf("initrd is not gzip: %v", err)
	}
	raw0, _ := io.ReadAll(zr)
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(raw0)
	lst, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, lst)
	}
	for _, want := range []string{" init\n", " dev/console\n", " dev/null\n", " etc/initrd-release\n", " etc/keso/initrd-modules\n",
		" sysroot\n", " lib/modules/" + kver + "/kernel/fs/squashfs/squashfs.ko\n", " lib/modules/" + kver + "/modules.dep\n",
		" lib/modules/" + kver + "/kernel/drivers/virtio/virtio.ko\n"} {
		if !strings.Contains(string(lst), want) {
			t.Errorf("initrd lacks%s", strings.TrimSuffix(want, "\n"))
		}
	}
	if strings.Contains(string(lst), "br_netfilter") {
		t.Error("initrd carries a root-only module (br_netfilter)")
	}
	if !strings.Contains(string(lst), "crw-------   1 root     root       5,   1") {
		t.Errorf("initrd /dev/console is not char 5,1:\n%s", lst)
	}

	// raw disk
	img := filepath.Join(out, "keso-amd64.img")
	if v := run(t, "", "sgdisk", "-v", img); !strings.Contains(v, "No problems found") {
		t.Errorf("sgdisk -v: %s", v)
	}
	parts, _ := raw.Plan("amd64", raw.Layout{EFIMiB: 256, RootMiB: 32, StateMiB: 64})
	espImg := extract(t, img, parts[0].Start*512, parts[0].Bytes())
	run(t, "", "fsck.vfat", "-n", espImg)
	e := run(t, "", "mtype", "-i", espImg, "::loader/entries/slot-a.conf")
	for _, want := range []string{"sort-key keso\n", "version 1\n", "linux /keso/a/vmlinuz\n", "options keso.slot=a console=ttyS0,115200 panic=10\n"} {
		if !strings.Contains(e, want) {
			t.Errorf("slot-a.conf lacks %q:\n%s", want, e)
		}
	}
	lc := run(t, "", "mtype", "-i", espImg, "::loader/loader.conf")
	if strings.Contains(lc, "default") || !strings.Contains(lc, "timeout 0") {
		t.Errorf("loader.conf = %q: want timeout 0 and no default line", lc)
	}
	run(t, "", "mtype", "-i", espImg, "::EFI/BOOT/BOOTX64.EFI")
	run(t, "", "mtype", "-i", espImg, "::keso/a/initrd")
	run(t, "", "unsquashfs", "-s", extract(t, img, parts[1].Start*512, parts[1].Bytes()))
	run(t, "", "fsck.ext4", "-n", "-f", extract(t, img, parts[3].Start*512, parts[3].Bytes()))

	// ISO
	rep := run(t, "", "xorriso", "-indev", filepath.Join(out, "keso-amd64.iso"), "-report_el_torito", "plain", "-report_system_area", "plain")
	for _, want := range []string{"Volume id    : 'KESO'", "El Torito boot img :   1  BIOS", "El Torito boot img :   2  UEFI",
		"MBR isohybrid", "GPT partition path :   1  /boot/efiboot.img"} {
		if !strings.Contains(rep, want) {
			t.Errorf("xorriso report lacks %q:\n%s", want, rep)
		}
	}
	// netboot
	ipxe, _ := os.ReadFile(filepath.Join(out, "netboot", "boot.ipxe"))
	if !strings.Contains(string(ipxe), "set keso-base http://10.0.2.2:8080") || !strings.Contains(string(ipxe), "keso.root_sha256=") {
		t.Errorf("boot.ipxe:\n%s", ipxe)
	}
}

func extract(t *testing.T, img string, off uint64, n int64) string {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := filepath.Join(t.TempDir(), "part")
	o, _ := os.Create(p)
	defer o.Close()
	if _, err := io.Copy(o, io.NewSectionReader(f, int64(off), n)); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMissingK3sSaysHowToSupplyIt(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	f.prof.K3s.URL = srv.URL + "/k3s"
	o := f.opts
	o.K3s = ""
	o.OutDir = t.TempDir()
	_, err := Build(context.Background(), o)
	if err == nil {
		t.Fatal("want an error without k3s")
	}
	for _, want := range []string{"k3s binary not found", "--k3s /path/to/k3s", "v1.31.4+k3s1", srv.URL + "/k3s", srv.URL + "/sha256sum-amd64.txt could not be fetched: HTTP 404"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestMissingModuleIsAnError(t *testing.T) {
	f := newFixture(t)
	f.prof.Modules = append(f.prof.Modules, "e1000")
	o := f.opts
	o.OutDir = t.TempDir()
	_, err := Build(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "e1000") {
		t.Fatalf("err = %v, want one naming e1000", err)
	}
}

func TestK3sForAnotherArchIsRefused(t *testing.T) {
	f := newFixture(t)
	exe, err := os.Executable() // the test binary: an amd64 ELF on CI
	if err != nil {
		t.Fatal(err)
	}
	f.prof.Arch = "arm64"
	o := f.opts
	o.K3s = exe
	o.OutDir = t.TempDir()
	_, err = Build(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "k3s-arm64") {
		t.Fatalf("err = %v, want a refusal naming the k3s-arm64 asset", err)
	}
}

func TestExtraTreeThatReplacesKesoIsRefused(t *testing.T) {
	f := newFixture(t)
	ext := t.TempDir()
	os.MkdirAll(filepath.Join(ext, "sbin"), 0o755)
	os.WriteFile(filepath.Join(ext, "sbin/init"), []byte("#!/bin/sh\n"), 0o755)
	o := f.opts
	o.OutDir = t.TempDir()
	o.Extra = []string{ext}
	_, err := Build(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(ext, "sbin/init")+": /sbin/init would replace a symlink") {
		t.Fatalf("err = %v, want a refusal naming %s", err, filepath.Join(ext, "sbin/init"))
	}
}

// TestUnpackDebConcurrent: builds sharing a cache may unpack one package
// at once; every one of them gets the complete folder and no temporary
// folder is left behind.
func TestUnpackDebConcurrent(t *testing.T) {
	need(t, "dpkg-deb")
	debs, cache := t.TempDir(), t.TempDir()
	files := map[string][]byte{}
	for i := 0; i < 200; i++ {
		files[fmt.Sprintf("usr/share/x/f%03d", i)] = bytes.Repeat([]byte{byte(i)}, 4096)
	}
	mkdeb(t, debs, "pkg", "1", "all", "", files)
	deb := filepath.Join(debs, "pkg_1_all.deb")
	const n = 4
	dirs, errs := make([]string, n), make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &builder{opts: Options{CacheDir: cache}}
			dirs[i], errs[i] = b.unpackDeb(deb, "pkg", nil)
		}()
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Errorf("unpack %d: %q, %v; want %q, no error", i, dirs[i], errs[i], dirs[0])
		}
	}
	if got, err := os.ReadFile(filepath.Join(dirs[0], "usr/share/x/f199")); err != nil || !bytes.Equal(got, files["usr/share/x/f199"]) {
		t.Errorf("unpacked f199: %d bytes, %v", len(got), err)
	}
	left, _ := filepath.Glob(filepath.Join(cache, "unpacked", "*.tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary folders left behind: %v", left)
	}
}

// TestFullDeltaForUncompressedRoot: a signed build with compression: none
// publishes the delta from nothing beside its upgrade image, signed with
// the release key, and applying it to an empty slot gives the image.
func TestFullDeltaForUncompressedRoot(t *testing.T) {
	need(t, "unsquashfs")
	f := newFixture(t)
	pub, key, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	o := f.opts
	o.OutDir = t.TempDir()
	o.SignKey = key
	prof := *f.prof
	prof.Compression = "none"
	o.Profile = &prof
	if _, err := Build(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	up := filepath.Join(o.OutDir, UpgradeImageName(prof.Version, "amd64"))
	img, err := os.ReadFile(up)
	if err != nil {
		t.Fatal(err)
	}
	p := delta.PathsFor(up, "")
	index, err1 := os.ReadFile(p.Index)
	sig, err2 := os.ReadFile(p.Sig)
	data, err3 := os.ReadFile(p.Data)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatalf("the delta from nothing is not beside the image: %v", err)
	}
	ix, err := delta.Open(index, sig, []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatalf("delta index: %v", err)
	}
	if got, want := ix.Version, prof.Version; got != want || ix.From.Size != 0 {
		t.Errorf("index: version %q from %d bytes, want %q from nothing", got, ix.From.Size, want)
	}
	slot := &memSlot{b: make([]byte, len(img))}
	if err := delta.Check(ix, bytes.NewReader(nil), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := delta.Apply(ix, bytes.NewReader(nil), bytes.NewReader(data), slot, func(int64, int64) {}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if !bytes.Equal(slot.b, img) {
		t.Errorf("the delta from nothing does not build the image")
	}
	if len(data) >= len(img) {
		t.Errorf("data %d bytes for a %d-byte uncompressed image: not compressed", len(data), len(img))
	}
}

// memSlot is a slot in memory (delta.Target).
type memSlot struct{ b []byte }

func (m *memSlot) ReadAt(p []byte, off int64) (int, error)  { return copy(p, m.b[off:]), nil }
func (m *memSlot) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }
