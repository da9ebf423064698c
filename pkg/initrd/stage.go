package initrd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/cmdline"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/kmod"
	"github.com/keso-os/keso/pkg/verity"
)

// Host is the set of side effects the initrd stage needs; *host.Linux
// implements it.
type Host interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string) error
	LoadModule(path, params string) error
	AttachLoop(file string) (string, error)
	// OpenVerity maps dataDev through dm-verity (the tree on the same
	// device) and returns the mapped device's path.
	OpenVerity(name, dataDev string, t *verity.Tree) (string, error)
	BlockSize(path string) (int64, error)
	GrowExt4(mountpoint string, deviceBytes int64) (before, after uint64, err error)
	ResizePartition(disk string, partno int, start, length int64) error
	// PatchDevice writes bytes at offsets of a device and syncs it (a
	// grown partition table).
	PatchDevice(path string, patches []host.Patch) error
	Links() ([]host.Link, error)
	LinkUp(name string) error
	DHCP(ctx context.Context, link string, timeout time.Duration) (*host.Lease, error)
	SwitchRoot(newRoot, init string, argv, env []string) error
}

// Stage runs the initrd stage.
type Stage struct {
	Host Host
	Root string    // prefix for every path ("/" on a device; a temp dir in tests)
	Log  io.Writer // the console
	// Poll is the interval between device scans; Sleep waits (tests make it instant).
	Poll  time.Duration
	Sleep func(time.Duration)
	Now   func() time.Time
	// KernelRelease names the /lib/modules directory; empty means uname.
	KernelRelease string
}

// Paths inside the initramfs (and, after switch root, /run of the system).
const (
	Sysroot  = "/sysroot"
	RunDir   = "/run/keso"
	MediaDir = "/run/keso/media"
	StateDir = "/keso/state" // inside the root
	InfoFile = "/run/keso/initrd.json"
	Init     = "/sbin/init"
)

// Info is the boot record, keso's one description of a boot: what the
// initrd stage found, written to InfoFile; the system stage adds the OS
// version, writes it to /run/keso/boot.json and hands it to the agent.
type Info struct {
	Mode        Mode     `json:"mode"`
	Slot        string   `json:"slot,omitempty"`
	MBRDisk     string   `json:"mbr_disk,omitempty"`             // keso.mbr: signature of the MBR disk holding the slots
	Root        string   `json:"root"`                           // device, ISO file or URL the root came from
	RootDevice  string   `json:"root_device"`                    // what is mounted on /
	Verity      string   `json:"verity_root_hash,omitempty"`     // disk mode: the slot's dm-verity root hash
	State       string   `json:"state,omitempty"`                // KESO_STATE device, if any
	StateGrown  []uint64 `json:"state_grown_blocks,omitempty"`   // blocks before, after
	StatePart   []uint64 `json:"state_partition_lbas,omitempty"` // end LBA before, after, when the GPT was grown
	Lease       string   `json:"lease,omitempty"`                // netboot: link and address
	ModulesSkip []string `json:"modules_skipped,omitempty"`
	Cmdline     string   `json:"cmdline"`
	Version     string   `json:"version,omitempty"` // the OS version (/etc/os-release), from the system stage on
}

func (s *Stage) path(p string) string { return filepath.Join(s.Root, p) }

func (s *Stage) logf(format string, a ...any) {
	fmt.Fprintf(s.Log, "keso-init: "+format+"\n", a...)
}

func (s *Stage) defaults() {
	if s.Root == "" {
		s.Root = "/"
	}
	if s.Log == nil {
		s.Log = os.Stderr
	}
	if s.Poll == 0 {
		s.Poll = 250 * time.Millisecond
	}
	if s.Sleep == nil {
		s.Sleep = time.Sleep
	}
	if s.Now == nil {
		s.Now = time.Now
	}
}

// MountAPI mounts /proc, /sys, /dev (devtmpfs) and /run. A file system that
// is already mounted there is fine.
func (s *Stage) MountAPI() error {
	s.defaults()
	for _, m := range []struct{ src, dst, fs, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
	} {
		err := s.Host.Mount(m.src, s.path(m.dst), m.fs, host.MountNoSuid, m.data)
		if err != nil && !errors.Is(err, errBusy) {
			return err
		}
	}
	return nil
}

// Run is the whole stage after MountAPI: plan from cmdline, load modules,
// find and mount the root, set up the layers, record Info and switch root.
// It returns only on failure, with an error that says what was looked for
// and what was found.
func (s *Stage) Run(ctx context.Context, cmd string, plan Plan) error {
	s.defaults()
	info := Info{Cmdline: strings.TrimSpace(cmd)}
	info.ModulesSkip = s.LoadModules()
	if err := s.FindRoot(ctx, plan, &info); err != nil {
		return err
	}
	if err := s.Layers(&info); err != nil {
		return err
	}
	if err := s.writeInfo(info); err != nil {
		return err
	}
	s.logf("root %s (%s) mounted, switching root", info.Root, info.Mode)
	return s.Host.SwitchRoot(s.path(Sysroot), Init, []string{"init"}, []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=linux",
	})
}

// ReadCmdline reads /proc/cmdline and plans from it.
func (s *Stage) ReadCmdline() (string, Plan, error) {
	s.defaults()
	b, err := os.ReadFile(s.path("/proc/cmdline"))
	if err != nil {
		return "", Plan{}, fmt.Errorf("read kernel command line: %w", err)
	}
	pl, err := PlanFromCmdline(cmdline.Parse(string(b)))
	return string(b), pl, err
}

func (s *Stage) writeInfo(info Info) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", InfoFile, err)
	}
	return s.fs().WriteFileAtomic(InfoFile, append(b, '\n'), 0o644)
}

// fs is the stage's root, for writing by node path.
func (s *Stage) fs() host.FS { return host.FS{Root: s.Root} }

// LoadModules loads /etc/keso/initrd-modules and their dependencies. It
// returns the modules that were not found or failed; they are logged, not
// fatal (the driver may be built in).
func (s *Stage) LoadModules() []string {
	s.defaults()
	rel := s.KernelRelease
	if rel == "" {
		rel = host.KernelRelease()
	}
	modDir := s.path(filepath.Join("/lib/modules", rel))
	lf, err := os.Open(s.path("/etc/keso/initrd-modules"))
	if err != nil {
		s.logf("no module list (%v); relying on built-in drivers", err)
		return nil
	}
	want, err := kmod.ParseModuleList(lf)
	lf.Close()
	if err != nil {
		s.logf("read module list: %v", err)
	}
	tables, err := kmod.ReadTablesAt(host.FS{Root: s.Root}, rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.logf("no modules.dep for kernel %s (%v)", rel, err)
	case err != nil:
		s.logf("read %s/modules.dep: %v", modDir, err)
	}
	deps := tables.Deps
	files, missing := kmod.LoadOrder(deps, want)
	var skipped []string
	if len(missing) > 0 {
		s.logf("modules not in modules.dep (built in or absent): %s", strings.Join(missing, " "))
		skipped = append(skipped, missing...)
	}
	start := s.Now()
	loaded := 0
	for _, f := range files {
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(modDir, f)
		} else {
			p = s.path(p)
		}
		if err := s.Host.LoadModule(p, ""); err != nil {
			s.logf("module %s: %v", kmod.ModuleName(f), err)
			skipped = append(skipped, kmod.ModuleName(f))
			continue
		}
		loaded++
	}
	s.logf("loaded %d modules in %s", loaded, s.Now().Sub(start).Round(time.Millisecond))
	return skipped
}
