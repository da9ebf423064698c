// Command realnode is a TEST FIXTURE that stands in for k3s on a real
// Kubernetes node in keso's end-to-end tests (k3s cannot be downloaded on
// the build machines). It is never shipped as k3s: only the test suite
// passes it to the builder, with --test-fixture.
//
// It takes k3s's command line and /etc/rancher/k3s/config.yaml (`agent`,
// --server, --token, --node-name, --node-label, --node-taint,
// --kubelet-arg, --data-dir, --config; anything else is refused) and does
// what a k3s agent does with them, with the real upstream parts k3s
// bundles:
//   - starts containerd (Debian's, carried into the test image) with k3s's
//     folders and socket, runc, and a bridge CNI network over the node's
//     pod CIDR;
//   - imports every tarball in <data-dir>/agent/images/ into containerd's
//     k8s.io namespace (k3s's air-gap behaviour);
//   - discovers the cluster CA, checked against the hash in the token, and
//     starts a real kubelet (v1.37.2) that joins the server through TLS
//     bootstrap with the token; the kubelet writes its kubeconfig at
//     k3s's path, <data-dir>/agent/kubelet.kubeconfig.
//
// It exits when containerd or the kubelet exits, as k3s would, and stops
// both on SIGTERM. Built with -ldflags "-X main.exitAfter=60s" it exits
// with status 1 after that long: a broken release for the rollback test.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Marker tells keso-build that this binary is a test fixture, not k3s.
var Marker = "KESO-TEST-FIXTURE-NOT-K3S realnode"

// exitAfter, when set, is how long the fixture runs before it exits 1.
var exitAfter string

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-v") {
		fmt.Println("k3s version v0.0.0-realnode (" + Marker + ")")
		return
	}
	a, err := ParseArgs(os.Args[1:], os.ReadFile)
	if err != nil {
		fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, a); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "realnode: %v\n", err)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Printf("realnode: "+format+"\n", args...)
}

func run(ctx context.Context, a Args) error {
	l := Layout{DataDir: a.DataDir}
	token := a.Token
	if a.TokenFile != "" {
		b, err := os.ReadFile(a.TokenFile)
		if err != nil {
			return fmt.Errorf("token file: %w", err)
		}
		token = string(b)
	}
	tok, err := ParseToken(token)
	if err != nil {
		return err
	}
	files := map[string]string{
		l.ContainerdConfig(): ContainerdConfig(l),
		l.CNITemplate():      CNITemplate,
		l.KubeletConfig():    KubeletConfig(l),
	}
	for p, data := range files {
		if err := writeFile(p, data, 0o644); err != nil {
			return err
		}
	}
	for _, d := range []string{l.CNIConfDir(), l.Images(), RunDir, "/var/lib/kubelet", "/var/log/pods"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	exited := make(chan error, 2)
	ctrd, err := start(ctx, "containerd", l.agent("containerd/containerd.log"), exited, Containerd, "--config", l.ContainerdConfig())
	if err != nil {
		return err
	}
	if err := waitSocket(ctx, Socket, time.Minute); err != nil {
		return err
	}
	logf("containerd up (%s)", Socket)
	if err := importImages(ctx, l.Images()); err != nil {
		return err
	}
	var ca []byte
	for i := 0; ; i++ {
		ca, err = DiscoverCA(a.Server, tok, 10*time.Second)
		if err == nil {
			break
		}
		if i%10 == 0 {
			logf("waiting for the server: %v", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-exited:
			return err
		case <-time.After(3 * time.Second):
		}
	}
	if err := writeFile(l.BootstrapKubeconfig(), BootstrapKubeconfig(a.Server, ca, tok), 0o600); err != nil {
		return err
	}
	argv := KubeletArgv(a, l)
	kl, err := start(ctx, "kubelet", l.agent("kubelet.log"), exited, argv[0], argv[1:]...)
	if err != nil {
		return err
	}
	logf("kubelet started: %s", strings.Join(argv, " "))
	var timer <-chan time.Time
	if exitAfter != "" {
		d, err := time.ParseDuration(exitAfter)
		if err != nil {
			return fmt.Errorf("exitAfter %q: %w", exitAfter, err)
		}
		timer = time.After(d)
	}
	select {
	case <-ctx.Done():
		logf("stopping")
		terminate(kl, ctrd)
		return nil
	case err := <-exited:
		terminate(kl, ctrd)
		return err
	case <-timer:
		terminate(kl, ctrd)
		return fmt.Errorf("exiting after %s as built (a broken release for the rollback test)", exitAfter)
	}
}

// start runs a child with its output appended to logPath; its exit is
// sent on exited.
func start(ctx context.Context, name, logPath string, exited chan<- error, prog string, args ...string) (*exec.Cmd, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("mkdir %s: %w", filepath.Dir(logPath), err)
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", logPath, err)
	}
	cmd := exec.Command(prog, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		err := cmd.Wait()
		lf.Close()
		if ctx.Err() == nil {
			exited <- fmt.Errorf("%s exited: %v (log: %s)", name, err, logPath)
		}
	}()
	return cmd, nil
}

func terminate(cmds ...*exec.Cmd) {
	for _, c := range cmds {
		if c != nil && c.Process != nil {
			c.Process.Signal(syscall.SIGTERM)
		}
	}
	time.Sleep(2 * time.Second)
}

func waitSocket(ctx context.Context, path string, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd: no socket %s after %s", path, max)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// importImages is k3s's air-gap import: every *.tar in dir (symlinks
// followed) into containerd's k8s.io namespace.
func importImages(ctx context.Context, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("air-gap images: %w", err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".tar") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		start := time.Now()
		out, err := exec.CommandContext(ctx, Ctr, "--address", Socket, "-n", "k8s.io", "images", "import", p).CombinedOutput()
		if err != nil {
			return fmt.Errorf("import %s: %v: %s", p, err, strings.TrimSpace(string(out)))
		}
		logf("imported %s in %s: %s", p, time.Since(start).Round(time.Millisecond), strings.Join(strings.Fields(string(out)), " "))
	}
	return nil
}

func writeFile(p, data string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", filepath.Dir(p), err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), mode); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("rename %s: %w", p, err)
	}
	return nil
}
