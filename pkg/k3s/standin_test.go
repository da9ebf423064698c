package k3s

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keso-os/keso/internal/testutil"
	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
)

const handoffChildEnv = "KESO_K3S_TEST_HANDOFF_ROOT"

// TestHandoffToStandin runs the whole handoff for real — Plan, Prepare
// with host.Linux, the Supervisor with the real starter — against the k3s
// stand-in test fixture (test/k3s-standin, built here), in a chroot inside
// private mount and network namespaces, and checks what the stand-in
// recorded: its argv, environment and the config file it found.
func TestHandoffToStandin(t *testing.T) {
	if root := os.Getenv(handoffChildEnv); root != "" {
		handoffInChroot(t, root)
		return
	}
	if os.Getuid() != 0 {
		t.Skip("SKIPPED: chroot and mounts need root (CI runs as root)")
	}
	root := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(root, Binary), "github.com/keso-os/keso/test/k3s-standin")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the k3s stand-in: %v\n%s", err, out)
	}
	cfg, err := os.ReadFile("../../config-examples/01-single-node-store-server.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "cfg"), 0o755)
	os.WriteFile(filepath.Join(root, "cfg/config.yaml"), cfg, 0o644)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHandoffToStandin$", "-test.v")
	cmd.Env = append(os.Environ(), handoffChildEnv+"="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("child in a chroot: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func handoffInChroot(t *testing.T, root string) {
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("bind root", syscall.Mount(root, root, "", syscall.MS_BIND, ""))
	os.MkdirAll(filepath.Join(root, "proc"), 0o755)
	must("mount proc", syscall.Mount("proc", filepath.Join(root, "proc"), "proc", 0, ""))
	// Only /dev/null (os/exec needs it): without /dev/console the
	// stand-in prints its record to stdout, which is the supervisor's Out.
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	os.WriteFile(filepath.Join(root, "dev/null"), nil, 0o666)
	must("bind /dev/null", syscall.Mount("/dev/null", filepath.Join(root, "dev/null"), "", syscall.MS_BIND, ""))
	must("chroot", syscall.Chroot(root))
	must("chdir", os.Chdir("/"))
	os.MkdirAll("/run", 0o755)

	data, err := os.ReadFile("/cfg/config.yaml")
	must("read config", err)
	res := cloudconfig.LoadFile("config.yaml", data)
	h := Plan(res.Config)
	var log testutil.LockedBuffer
	rec := phase.NewRecorder("k3s", &log, nil)
	must("prepare", Prepare(host.FS{Root: "/"}, host.Linux{}, nil, h, rec))
	if rep := rec.Done(); !rep.OK() {
		t.Fatalf("Prepare failures: %+v", rep.Failures)
	}

	var out testutil.LockedBuffer
	sup := &Supervisor{Argv: h.Argv, Env: h.Env, Starter: ExecStarter{Host: host.Linux{}, Out: &out}, Log: &log, StopTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()

	var recorded struct {
		Argv       []string          `json:"argv"`
		Pid        int               `json:"pid"`
		Env        map[string]string `json:"env"`
		ConfigYAML *string           `json:"config_yaml"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile("/run/k3s-standin.json")
		if err == nil && json.Unmarshal(b, &recorded) == nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the stand-in recorded nothing in /run/k3s-standin.json; output %q; log:\n%s", out.String(), log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !slices.Equal(recorded.Argv, h.Argv) {
		t.Errorf("stand-in argv: got %q, want %q", recorded.Argv, h.Argv)
	}
	if recorded.Env["PATH"] != DefaultPath || recorded.Env["HOME"] != "/root" {
		t.Errorf("stand-in env: got %v, want PATH=%s HOME=/root", recorded.Env, DefaultPath)
	}
	if recorded.ConfigYAML == nil || *recorded.ConfigYAML != string(h.ConfigYAML) {
		t.Errorf("stand-in saw config.yaml %v, want %q", recorded.ConfigYAML, h.ConfigYAML)
	}
	for _, want := range []string{"write-kubeconfig-mode: \"0600\"", "- keso.io/store=0042", "token: change-me-store-0042"} {
		if recorded.ConfigYAML != nil && !strings.Contains(*recorded.ConfigYAML, want) {
			t.Errorf("stand-in config.yaml lacks %q:\n%s", want, *recorded.ConfigYAML)
		}
	}
	if hl := sup.Health(); !hl.Running || hl.PID != recorded.Pid || hl.Starts != 1 {
		t.Errorf("health while running: %+v, want running with the stand-in's pid %d", hl, recorded.Pid)
	}
	if !strings.Contains(out.String(), "KESO-K3S-STANDIN ") {
		t.Errorf("the stand-in's output did not reach Out: %q", out.String())
	}
	cancel()
	select {
	case err := <-done:
		must("Run", err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if hl := sup.Health(); hl.Running || !hl.Stopped || hl.LastExit != "signal: terminated" {
		t.Errorf("health after stop: %+v, want stopped by SIGTERM", hl)
	}
	t.Logf("log:\n%s", log.String())
}
