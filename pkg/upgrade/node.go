package upgrade

import (
	"crypto/ed25519"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/cmdline"
	"github.com/keso-os/keso/pkg/sign"
)

// Paths on a node.
const (
	// KeysDir holds the release public keys built into the image
	// ("ed25519:<base64>", one per *.pub file).
	KeysDir = "/usr/share/keso/keys"
	// EffectiveConfig is the merged cloud-config the agent applied; its
	// keso.upgrade.public_keys are trusted too.
	EffectiveConfig = "/run/keso/config.yaml"
	// ArchFile names the image's arch (written by keso-build, read by
	// keso install too).
	ArchFile = "/usr/share/keso/install/arch"
)

// NodeFS is the running root (host.FS{Root: "/"} on a node).
type NodeFS interface {
	ReadFile(p string) ([]byte, error)
	ReadDir(p string) ([]fs.DirEntry, error)
}

// ReadNode gathers the running system's facts: version from
// /etc/os-release, slot from /proc/cmdline, trusted keys from KeysDir plus
// extra, and the kernel options of the running slot's boot entry.
func ReadNode(root NodeFS, esp bootloader.ESP, extraKeys []string) (Node, error) {
	var n Node
	osr, err := root.ReadFile("/etc/os-release")
	if err != nil {
		return n, fmt.Errorf("read node facts: %w", err)
	}
	n.Version = OSReleaseField(osr, "VERSION_ID")
	cl, err := root.ReadFile("/proc/cmdline")
	if err != nil {
		return n, fmt.Errorf("read node facts: %w", err)
	}
	params := cmdline.Parse(string(cl))
	if s, ok := params.Get("keso.slot"); ok {
		n.Slot = bootloader.Slot(s)
	}
	if b, err := root.ReadFile(ArchFile); err == nil {
		n.Arch = strings.TrimSpace(string(b))
	}
	des, _ := root.ReadDir(KeysDir)
	var names []string
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".pub") {
			names = append(names, de.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		data, err := root.ReadFile(path.Join(KeysDir, name))
		if err != nil {
			return n, fmt.Errorf("read node facts: %w", err)
		}
		k, err := sign.ParsePublic(string(data))
		if err != nil {
			return n, fmt.Errorf("read node facts: %s: %w", name, err)
		}
		n.TrustedKeys = append(n.TrustedKeys, k)
	}
	for _, s := range extraKeys {
		k, err := sign.ParsePublic(s)
		if err != nil {
			return n, fmt.Errorf("read node facts: upgrade.public_keys: %w", err)
		}
		n.TrustedKeys = append(n.TrustedKeys, ed25519.PublicKey(k))
	}
	if esp != nil && n.Slot.Valid() {
		entries, err := bootloader.Entries(esp)
		if err != nil {
			return n, fmt.Errorf("read node facts: %w", err)
		}
		for _, e := range entries {
			if e.Slot == n.Slot {
				n.Options = stripSlot(e.Options)
			}
		}
	}
	return n, nil
}

func stripSlot(opts string) string { return bootloader.StripSlotOption(opts) }
