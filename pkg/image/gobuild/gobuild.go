// Package gobuild cross-compiles keso's Go binaries (static, -trimpath,
// reproducible) and the u-root userland as one gobusybox multi-call binary,
// cached by arch, u-root version and command list.
package gobuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Target is a GOOS=linux architecture.
type Target struct {
	GOARCH string
	GOARM  string
}

func (t Target) env() []string {
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+t.GOARCH)
	if t.GOARM != "" {
		env = append(env, "GOARM="+t.GOARM)
	}
	return env
}

// VersionVar is the -X target for the keso version.
const VersionVar = "github.com/keso-os/keso/pkg/version.Version"

// Binary builds the Go package pkg (e.g. "./cmd/keso-init") from the module in
// modDir into out.
func Binary(ctx context.Context, modDir, pkg, out string, t Target, version string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= -X "+VersionVar+"="+version, "-o", out, pkg)
	cmd.Dir = modDir
	cmd.Env = t.env()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s%s: %w\n%s", pkg, t.GOARCH, t.GOARM, err, b)
	}
	return nil
}

// URootModule is the u-root module whose commands make the userland.
const URootModule = "github.com/u-root/u-root"

// DefaultCommands are the u-root core commands shipped in /bin.
var DefaultCommands = []string{
	"base64", "basename", "blkid", "cat", "chmod", "chroot", "cmp", "comm", "cp", "cpio",
	"date", "dd", "df", "dhclient", "dirname", "dmesg", "du", "echo", "false", "find",
	"free", "gosh", "gpt", "grep", "gzip", "head", "hexdump", "hostname", "hwclock", "id",
	"insmod", "ip", "kill", "ln", "losetup", "ls", "lsmod", "mkdir", "mkfifo", "mknod",
	"mktemp", "more", "mount", "mv", "netcat", "netstat", "nohup", "pidof", "ping",
	"printenv", "ps", "pwd", "readlink", "realpath", "rm", "rmmod", "seq", "shasum",
	"sleep", "sort", "strings", "stty", "sync", "tail", "tar", "tee", "time", "timeout",
	"touch", "tr", "true", "truncate", "tty", "umount", "uname", "uniq", "uptime",
	"wc", "wget", "which", "xargs", "yes",
}

// moduleDir asks the go command where a module version lives (downloading it
// through the module proxy when needed).
func moduleDir(ctx context.Context, modDir, mod string) (dir, version string, err error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-json", mod)
	cmd.Dir = modDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("go list -m %s: %w\n%s", mod, err, stderr.Bytes())
	}
	var m struct{ Dir, Version string }
	if err := json.Unmarshal(b, &m); err != nil {
		return "", "", fmt.Errorf("go list -m %s: %w", mod, err)
	}
	if m.Dir == "" {
		dl := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod+"@"+m.Version)
		dl.Dir = modDir
		b, err := dl.Output()
		if err != nil {
			return "", "", fmt.Errorf("go mod download %s@%s: %w", mod, m.Version, err)
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return "", "", fmt.Errorf("go mod download %s: %w", mod, err)
		}
	}
	return m.Dir, m.Version, nil
}

// Busybox returns the path of a cached u-root multi-call binary with cmds for
// target t, building it with gobusybox's makebb when it is not cached. The
// cache key covers the u-root version, the Go version, the target and cmds.
func Busybox(ctx context.Context, modDir, cacheDir string, t Target, cmds []string) (string, error) {
	urootDir, urootVer, err := moduleDir(ctx, modDir, URootModule)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "uroot=%s go=%s arch=%s arm=%s cmds=%s", urootVer, runtime.Version(), t.GOARCH, t.GOARM, strings.Join(cmds, ","))
	key := hex.EncodeToString(h.Sum(nil))[:16]
	out := filepath.Join(cacheDir, "u-root", fmt.Sprintf("bb-%s-%s%s-%s", urootVer, t.GOARCH, t.GOARM, key))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("u-root cache: %w", err)
	}
	makebb, err := hostTool(ctx, modDir, cacheDir, "github.com/u-root/gobusybox/src/cmd/makebb")
	if err != nil {
		return "", err
	}
	// A temporary name of this build's own: two builds sharing the cache
	// may build the same binary at once; the rename is atomic.
	// (Not os.CreateTemp: the go command refuses to overwrite a file
	// that is not a Go build output.)
	tmp := fmt.Sprintf("%s.tmp-%d", out, os.Getpid())
	defer os.Remove(tmp)
	args := []string{"-go-mod", "readonly", "-o", tmp}
	for _, c := range cmds {
		args = append(args, "./cmds/core/"+c)
	}
	cmd := exec.CommandContext(ctx, makebb, args...)
	cmd.Dir = urootDir // makebb resolves the commands inside u-root's own module
	cmd.Env = append(t.env(), "GOFLAGS=-mod=readonly")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("makebb (u-root %s, %s%s): %w\n%s", urootVer, t.GOARCH, t.GOARM, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("u-root cache: %w", err)
	}
	return out, nil
}

// hostTool builds a Go main package of the module graph for the host, cached.
func hostTool(ctx context.Context, modDir, cacheDir, pkg string) (string, error) {
	mod := pkg
	if i := strings.Index(pkg, "/cmd/"); i >= 0 {
		mod = pkg[:i]
	}
	_, ver, err := moduleDir(ctx, modDir, mod)
	if err != nil {
		return "", err
	}
	out := filepath.Join(cacheDir, "tools", filepath.Base(pkg)+"-"+ver+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s (host tool): %w\n%s", pkg, err, b)
	}
	return out, nil
}
