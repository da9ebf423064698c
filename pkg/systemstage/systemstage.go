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

	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/initrd"
)

// Paths in the root file system.
const (
	OSRelease = "/etc/os-release"
	BootJSON  = "/run/keso/boot.json"
)

// Stage runs the system stage.
type Stage struct {
	Root string // "/" on a device, a temp dir in tests
	Log  io.Writer
	// Next runs after the boot record is written (the agent); it returns
	// only on failure or to stop the machine.
	Next func(initrd.Info) error
}

func (s *Stage) path(p string) string { return filepath.Join(s.Root, p) }

// Plan reads what the initrd stage recorded and the OS version: the boot
// record (initrd.Info with its Version). It is pure apart from reading
// files under Root.
func (s *Stage) Plan() (initrd.Info, error) {
	var info initrd.Info
	b, err := os.ReadFile(s.path(initrd.InfoFile))
	if err != nil {
		return initrd.Info{}, fmt.Errorf("read what the initrd stage found: %w", err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return initrd.Info{}, fmt.Errorf("decode %s: %w", initrd.InfoFile, err)
	}
	if info.Version, err = osVersion(s.path(OSRelease)); err != nil {
		return initrd.Info{}, err
	}
	return info, nil
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
	if err := (host.FS{Root: s.Root}).WriteFileAtomic(BootJSON, append(b, '\n'), 0o644); err != nil {
		return err
	}
	if s.Next == nil {
		return fmt.Errorf("system stage: nothing to hand over to")
	}
	return s.Next(boot)
}
