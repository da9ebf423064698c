package rack

import (
	"fmt"
	"io/fs"
	"path"
	"sort"

	"github.com/keso-os/keso/pkg/image/netboot"
)

// Arch is what the server can boot for one architecture: the build's
// netboot folder (keso-build's <out>/<arch>/netboot/).
type Arch struct {
	Name       string // amd64, arm64, armv7
	Dir        string // in the artifacts FS: <arch>/netboot
	RootSHA256 string
	Cmdline    string // the build's kernel arguments after the root's
}

// Files are the names served from an Arch's folder.
var Files = map[string]string{StepKernel: "vmlinuz", StepInitrd: "initrd", StepRoot: "rootfs.squashfs"}

// LoadArches finds every <arch>/netboot/boot.ipxe under fsys with its
// kernel, initrd and root beside it.
func LoadArches(fsys fs.FS) (map[string]Arch, error) {
	out := map[string]Arch{}
	for _, name := range []string{"amd64", "arm64", "armv7"} {
		dir := path.Join(name, "netboot")
		script, err := fs.ReadFile(fsys, path.Join(dir, "boot.ipxe"))
		if err != nil {
			continue
		}
		sum, cmd, err := netboot.ParseScript(script)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		for _, f := range sortedValues(Files) {
			if _, err := fs.Stat(fsys, path.Join(dir, f)); err != nil {
				return nil, fmt.Errorf("%s has boot.ipxe but no %s: build the netboot output again (keso-build --outputs netboot %s)", dir, f, name)
			}
		}
		out[name] = Arch{Name: name, Dir: dir, RootSHA256: sum, Cmdline: cmd}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no <arch>/netboot/boot.ipxe found: point the server at keso-build's output folder (the one holding amd64/, arm64/, armv7/)")
	}
	return out, nil
}

func sortedValues(m map[string]string) []string {
	var v []string
	for _, s := range m {
		v = append(v, s)
	}
	sort.Strings(v)
	return v
}

// ArchOf maps iPXE's ${buildarch} to keso's name for it ("" if none).
func ArchOf(buildarch string) string {
	switch buildarch {
	case "x86_64", "i386":
		return "amd64"
	case "arm64":
		return "arm64"
	case "arm32":
		return "armv7"
	}
	return ""
}
