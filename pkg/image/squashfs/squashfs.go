// Package squashfs writes the root file system with mksquashfs
// (squashfs-tools), the builder's one external tool: go-diskfs's squashfs
// writer is not usable for a real root (NOTES.md). Output is reproducible:
// owners are root, times are fixed, xattrs are dropped.
package squashfs

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Tool is the mksquashfs binary name.
const Tool = "mksquashfs"

// InstallHint says how to get mksquashfs.
const InstallHint = "install squashfs-tools: sudo apt-get install squashfs-tools (Debian/Ubuntu), sudo dnf install squashfs-tools (Fedora), brew install squashfs (macOS)"

// Check reports whether mksquashfs is available, with the install command if not.
func Check() error {
	if _, err := exec.LookPath(Tool); err != nil {
		return fmt.Errorf("host tool %s not found: %s", Tool, InstallHint)
	}
	return nil
}

// Options for Make.
type Options struct {
	// Compression is zstd (default), xz, gzip or none. none stores
	// every block as it is: larger, but a file that did not change keeps
	// its bytes and one that did changes only where it changed, which is
	// what makes upgrade deltas small (docs/upgrade.md "Deltas").
	Compression string
	Epoch       int64 // mkfs and file times
	Progress    io.Writer
}

// Args returns the mksquashfs arguments (a pure function, tested).
func Args(src, out string, o Options) []string {
	comp := o.Compression
	if comp == "" {
		comp = "zstd"
	}
	args := []string{src, out, "-noappend", "-all-root", "-no-xattrs",
		"-mkfs-time", strconv.FormatInt(o.Epoch, 10), "-all-time", strconv.FormatInt(o.Epoch, 10), "-b", "256K"}
	switch comp {
	case "none":
		args = append(args, "-noI", "-noD", "-noF", "-noX")
	default:
		args = append(args, "-comp", comp)
	}
	switch comp {
	case "zstd":
		args = append(args, "-Xcompression-level", "3")
	case "xz":
		args = append(args, "-Xdict-size", "100%")
	}
	// On a terminal mksquashfs draws its own progress bar (and prints its
	// summary); otherwise it stays silent.
	if o.Progress == nil {
		args = append(args, "-no-progress", "-quiet")
	}
	return args
}

// Make writes the squashfs image out from the folder src.
func Make(ctx context.Context, src, out string, o Options) error {
	if err := Check(); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, Tool, Args(src, out, o)...)
	// mksquashfs refuses SOURCE_DATE_EPOCH together with -mkfs-time/-all-time
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SOURCE_DATE_EPOCH=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	if o.Progress != nil {
		cmd.Stdout = o.Progress
		cmd.Stderr = o.Progress
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("mksquashfs %s -> %s: %w", src, out, err)
		}
		return nil
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mksquashfs %s -> %s: %w\n%s", src, out, err, b)
	}
	return nil
}
