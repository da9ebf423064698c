// Package systemstage is the start of keso-init's system stage, the part
// that runs as /sbin/init in the real root after the initrd stage switched
// root: it prints a banner with the version and the boot mode, records the
// boot in /run/keso/boot.json, and hands over to Next — on a node the agent
// (pkg/agent), which applies the config and supervises k3s.
package systemstage

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/keso-os/keso/pkg/initrd"
)

// Paths in the root file system.
const (
	OSRelease = "/etc/os-release"
	BootJSON  = "/run/keso/boot.json"
)

// Boot is the content of /run/keso/boot.json.
type Boot struct {
	Mode    initrd.Mode `json:"mode"`
	Slot    string      `json:"slot,omitempty"`
	Version string      `json:"version"`
	Root    string      `json:"root"`
	// From the initrd stage, for diagnosis.
	RootDevice string   `json:"root_device,omitempty"`
	Verity     string   `json:"verity_root_hash,omitempty"` // disk mode: the slot's dm-verity root hash
	State      string   `json:"state,omitempty"`
	StateGrown []uint64 `json:"state_grown_blocks,omitempty"`
	Lease      string   `json:"lease,omitempty"`
}

// Stage runs the system stage.
type Stage struct {
	Root string // "/" on a device, a temp dir in tests
	Log  io.Writer
	// Next runs after the boot record is written (the agent); it returns
	// only on failure or to stop the machine.
	Next func(Boot) error
}

func (s *Stage) path(p string) string { return filepath.Join(s.Root, p) }

// Plan reads what the initrd stage recorded and the OS version and decides
// the boot record. It is pure apart from reading files under Root.
func (s *Stage) Plan() (Boot, error) {
	var info initrd.Info
	b, err := os.ReadFile(s.path(initrd.InfoFile))
	if err != nil {
		return Boot{}, fmt.Errorf("read what the initrd stage found: %w", err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return Boot{}, fmt.Errorf("decode %s: %w", initrd.InfoFile, err)
	}
	ver, err := osVersion(s.path(OSRelease))
	if err != nil {
		return Boot{}, err
	}
	boot := Boot{
		Mode: info.Mode, Slot: info.Slot, Version: ver, Root: info.Root,
		RootDevice: info.RootDevice, Verity: info.Verity, State: info.State, StateGrown: info.StateGrown, Lease: info.Lease,
	}
	return boot, nil
}

// osVersion returns VERSION_ID from an os-release file.
func osVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read OS version: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && k == "VERSION_ID" {
			return strings.Trim(v, `"'`), nil
		}
	}
	return "", fmt.Errorf("read OS version: no VERSION_ID in %s", path)
}

// Run prints the banner, writes boot.json and runs Next. It returns only
// on failure (or when Next returns).
func (s *Stage) Run() error {
	if s.Root == "" {
		s.Root = "/"
	}
	if s.Log == nil {
		s.Log = os.Stderr
	}
	boot, err := s.Plan()
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Log, "\nkeso %s (%s)\n\n", boot.Version, boot.Mode)
	b, err := json.Marshal(boot)
	if err != nil {
		return fmt.Errorf("encode %s: %w", BootJSON, err)
	}
	p := s.path(BootJSON)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if s.Next == nil {
		return fmt.Errorf("system stage: nothing to hand over to")
	}
	return s.Next(boot)
}
