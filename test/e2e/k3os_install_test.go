package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/test/e2e/qemu"
)

// k3osConfig is the k3OS node's own config (k3os/system/config.yaml): its
// name, its cluster token and rancher's key (%s).
const k3osConfig = `ssh_authorized_keys:
- %s
hostname: store-k3os
k3os:
  token: K10migrate::server:0123456789abcdef
  labels:
    region: north
`

// buildK3OSDisk lays a disk out as k3OS's install.sh does on UEFI: GPT,
// a FAT32 ESP labelled K3OS_GRUB (the first 48 MiB, parted's 0%–50MB
// aligned), an ext4 labelled K3OS_STATE to 715 MiB (50MB–750MB), free
// space after; K3OS_STATE holds tree (k3os/system/config.yaml, k3os/data/…).
// It returns the disk and the sha256 of k3OS's two partitions' bytes.
func buildK3OSDisk(t *testing.T, size int64, tree string) (string, string) {
	t.Helper()
	for _, tool := range []string{"sgdisk", "mkfs.vfat", "mke2fs", "dd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s missing: scripts/deps.sh installs it (gdisk, dosfstools, e2fsprogs)", tool)
		}
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "k3os.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, size); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	const grubStart, stateStart, stateEnd = 2048, 98304, 1464319
	run("sgdisk", "-n", fmt.Sprintf("1:%d:%d", grubStart, stateStart-1), "-t", "1:ef00", "-c", "1:primary",
		"-n", fmt.Sprintf("2:%d:%d", stateStart, stateEnd), "-t", "2:8300", "-c", "2:primary", disk)
	grub := filepath.Join(dir, "grub.img")
	run("mkfs.vfat", "-C", "-F", "32", "-n", "K3OS_GRUB", grub, fmt.Sprint((stateStart-grubStart)/2))
	state := filepath.Join(dir, "state.img")
	run("mke2fs", "-q", "-t", "ext4", "-L", "K3OS_STATE", "-d", tree, state, fmt.Sprintf("%dk", (stateEnd-stateStart+1)/2))
	run("dd", "if="+grub, "of="+disk, "bs=512", fmt.Sprintf("seek=%d", grubStart), "conv=notrunc,sparse", "status=none")
	run("dd", "if="+state, "of="+disk, "bs=512", fmt.Sprintf("seek=%d", stateStart), "conv=notrunc,sparse", "status=none")
	return disk, k3osPartsSum(t, disk)
}

// k3osPartsSum is the sha256 of the sectors k3OS's partitions occupy
// (K3OS_GRUB and K3OS_STATE, sectors 2048–1464319).
func k3osPartsSum(t *testing.T, disk string) string {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 2048*512, (1464319-2048+1)*512)); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestInstallOverK3OS (#17): a disk as k3OS leaves it (its config, a k3s
// state tree with the node's token and a few hundred MiB of files, rancher's
// home, OpenSSH host keys made by ssh-keygen) is installed over from the
// keso ISO with k3OS's silent-install keys, first cut short by a power cut
// (k3OS's partitions stay as they were), then again. The installed keso boots with
// k3OS's config; every file k3OS kept under /var/lib/rancher is
// byte-identical; OpenSSH's client, knowing only k3OS's ed25519 host key,
// logs in with StrictHostKeyChecking=yes; and k3s (the stand-in) is handed
// the same node name and token.
func TestInstallOverK3OS(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	v1, _ := upgradeReleases(t, "amd64")
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rancher", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")

	// K3OS_STATE's tree, as a k3OS node that ran for a while leaves it.
	tree := filepath.Join(dir, "tree")
	data := filepath.Join(tree, "k3os/data")
	write := func(p string, b []byte, mode os.FileMode) {
		t.Helper()
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(tree, "k3os/system/config.yaml"), []byte(fmt.Sprintf(k3osConfig, strings.TrimSpace(string(pub)))), 0o600)
	rancher := filepath.Join(data, "var/lib/rancher")
	write(filepath.Join(rancher, "k3s/server/token"), []byte("K10migrate::server:0123456789abcdef\n"), 0o600)
	write(filepath.Join(rancher, "k3s/server/tls/server-ca.crt"), []byte("-----BEGIN CERTIFICATE-----\nk3os\n-----END CERTIFICATE-----\n"), 0o644)
	write(filepath.Join(rancher, "k3os/node/password"), []byte("5f1e0c9a7b3d2e4f\n"), 0o600)
	write(filepath.Join(rancher, "k3os/hostname"), []byte("k3os-12345\n"), 0o644)
	blob := make([]byte, 1<<20)
	for i := range 300 { // 300 MiB of images and the datastore
		rand.Read(blob)
		write(filepath.Join(rancher, fmt.Sprintf("k3s/agent/containerd/blobs/%03d", i)), blob, 0o644)
	}
	write(filepath.Join(data, "home/rancher/.profile"), []byte("export EDITOR=vi\n"), 0o644)
	os.MkdirAll(filepath.Join(rancher, "k3os/ssh"), 0o755)
	hostKey := filepath.Join(rancher, "k3os/ssh/ssh_host_ed25519_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@k3os", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen host key: %v\n%s", err, out)
	}
	hostPub, _ := os.ReadFile(hostKey + ".pub")
	// What k3OS kept, by content, for comparing after the move.
	want := map[string]string{}
	filepath.Walk(rancher, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(rancher, p)
			want[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		return nil
	})
	target, k3osSum := buildK3OSDisk(t, 5<<30, tree)

	// The keso ISO installs with k3OS's silent-install keys.
	live := (`#cloud-config
k3os:
  install:
    device: /dev/vdb
    silent: true
    power_off: true
`)
	liveSeed := seed(t, live, "instance-id: k3os-live\n")
	installVM := func(name string) *qemu.VM {
		return qemu.Start(t, qemu.Config{LogDir: logDir(t), Name: name, Arch: "amd64", Firmware: qemu.UEFI, Boot: "c",
			Disks: []string{overlayDisk(t, v1.file(t, "keso-amd64.iso"), 0), target, liveSeed}})
	}
	gptType := func(stage string, want map[string]string) {
		t.Helper()
		for part, typ := range want {
			out, err := exec.Command("sgdisk", "-i", part, target).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "("+typ+")") {
				t.Errorf("%s: sgdisk -i %s: want type %q: %v\n%s", stage, part, typ, err, out)
			}
		}
	}

	// The power is cut in the middle of the first install, while it copies
	// from K3OS_STATE: k3OS's partitions are as they were and its ESP is
	// still the firmware's (k3OS boots on); keso's KESO_EFI is plain data.
	vm := installVM("k3os-install-cut")
	if _, _, err := vm.Expect(regexp.MustCompile(`EXT4-fs \(vdb2\): mounted`), 10*time.Minute); err != nil {
		t.Fatalf("install over k3OS: K3OS_STATE never mounted: %v", err)
	}
	time.Sleep(5 * time.Second) // 300 MiB take ~30 s to copy
	if strings.Contains(vm.Console(), "installed to /dev/vdb") {
		t.Fatalf("the install finished before the power cut; cut sooner")
	}
	vm.Stop()
	if got := k3osPartsSum(t, target); got != k3osSum {
		t.Errorf("k3OS's partitions changed by an install cut short: sha256 %s, want %s", got, k3osSum)
	}
	gptType("after the power cut", map[string]string{"1": "EFI system partition", "3": "Linux filesystem"})

	// Run again: it installs over its own unfinished partitions.
	vm = installVM("k3os-install-live")
	if _, _, err := vm.Expect(regexp.MustCompile(`installed to /dev/vdb`), 10*time.Minute); err != nil {
		t.Fatalf("silent install over k3OS: %v", err)
	}
	select {
	case <-vm.Exited():
	case <-time.After(2 * time.Minute):
		t.Fatalf("the VM did not power off after the install; console tail:\n%s", qemu.Tail(vm.Console(), 3000))
	}
	for _, w := range []string{"kept k3OS's k3os/system/config.yaml", "kept k3OS's k3os/data/var/lib/rancher ", "K3OS_STATE stays on /dev/vdb2"} {
		if !strings.Contains(vm.Console(), w) {
			t.Errorf("install console lacks %q", w)
		}
	}
	vm.Stop()
	// k3OS's partitions are as k3OS left them, byte for byte; the
	// firmware's ESP is now keso's (partition 3), K3OS_GRUB plain data.
	if got := k3osPartsSum(t, target); got != k3osSum {
		t.Errorf("k3OS's partitions changed during the install: sha256 %s, want %s", got, k3osSum)
	}
	gptType("after the install", map[string]string{"1": "Microsoft basic data", "3": "EFI system partition"})

	// The disk alone: keso boots from it with k3OS's config and state.
	port := freePort(t)
	n := &testNode{t: t, name: "k3os-migrated", arch: "amd64", disk: target, port: port}
	vm = n.start("disk")
	s, _ := handoff(t, vm)
	if s.NodeName != "store-k3os" {
		t.Errorf("k3s node name = %q, want store-k3os (k3OS's config)", s.NodeName)
	}
	if s.ConfigYAML == nil || !strings.Contains(*s.ConfigYAML, "K10migrate::server:0123456789abcdef") {
		t.Errorf("k3s config does not carry k3OS's token: %v", s.ConfigYAML)
	}
	if _, _, err := vm.Expect(readyRE, bootTimeout); err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", port, hostPub)), 0o644)
	sshRun := func(cmd string) (string, error) {
		out, err := exec.Command("ssh", "-p", fmt.Sprint(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
			"-o", "UserKnownHostsFile="+known, "-o", "HostKeyAlgorithms=ssh-ed25519", "-o", "ConnectTimeout=20",
			"-o", "IdentitiesOnly=yes", "-i", key, "rancher@127.0.0.1", cmd).CombinedOutput()
		return string(out), err
	}
	var out string
	var err error
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(3 * time.Second) {
		if out, err = sshRun("hostname"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || strings.TrimSpace(out) != "store-k3os" {
		t.Fatalf("ssh rancher@ with k3OS's host key as the only known one: %v\n%s", err, out)
	}
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	out, err = sshRun("cd /var/lib/rancher && sudo sha256sum " + strings.Join(paths, " "))
	if err != nil {
		t.Fatalf("sha256sum in the guest: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			got[f[1]] = f[0]
		}
	}
	differ := 0
	for p, sum := range want {
		if got[p] != sum {
			differ++
			if differ <= 5 {
				t.Errorf("/var/lib/rancher/%s: sha256 %q, want k3OS's %q", p, got[p], sum)
			}
		}
	}
	t.Logf("%d files under /var/lib/rancher compared with k3OS's, %d differ", len(want), differ)
	if out, _ := sshRun("cat .profile"); !strings.Contains(out, "EDITOR=vi") {
		t.Errorf("rancher's home was not kept: .profile = %q", out)
	}
}
