package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/generated/clientset/versioned"
	"github.com/keso-os/keso/pkg/operator"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

const jobNamespace = "keso-system"

var (
	env        *envtest.Environment
	cfg        *rest.Config
	kube       *kubernetes.Clientset
	keso       *versioned.Clientset
	kubeconfig string
	// operatorKubeconfig authenticates as keso-system:keso-operator.
	operatorKubeconfig string
	assets             string
	repoRoot           string
	setupErr           error
)

// TestMain starts one API server for all tests, or runs the operator when
// the binary is re-executed as the operator process.
func TestMain(m *testing.M) {
	if os.Getenv("KESO_TEST_OPERATOR") == "1" {
		os.Exit(runOperator())
	}
	setupErr = setup()
	code := m.Run()
	if env != nil {
		_ = env.Stop()
	}
	os.Exit(code)
}

func runOperator() int {
	fs := flagSet()
	opts := operator.Flags(fs)
	if err := fs.Parse(strings.Fields(os.Getenv("KESO_TEST_OPERATOR_ARGS"))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := operator.Run(context.Background(), *opts); err != nil {
		fmt.Fprintln(os.Stderr, "operator:", err)
		return 1
	}
	return 0
}

func findAssets() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, nil
	}
	out, err := exec.Command(filepath.Join(repoRoot, "scripts/kube-tools.sh"), "--print-dir").Output()
	if err != nil {
		return "", fmt.Errorf("etcd, kube-apiserver and kubectl v1.37.2 not found: set KUBEBUILDER_ASSETS or run scripts/kube-tools.sh (builds them into /var/cache/keso/kube-tools): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func setup() error {
	wd, _ := os.Getwd()
	repoRoot = filepath.Clean(filepath.Join(wd, "../.."))
	var err error
	if assets, err = findAssets(); err != nil {
		return err
	}
	os.Setenv("KUBEBUILDER_ASSETS", assets) // envtest reads it even when empty
	env = &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: time.Minute}
	start := time.Now()
	if cfg, err = env.Start(); err != nil {
		return fmt.Errorf("start kube-apiserver and etcd from %s: %w", assets, err)
	}
	fmt.Fprintf(os.Stderr, "integration: kube-apiserver + etcd from %s up in %s\n", assets, time.Since(start).Round(time.Millisecond))
	cfg.QPS, cfg.Burst = 500, 1000
	kube = kubernetes.NewForConfigOrDie(cfg)
	keso = versioned.NewForConfigOrDie(cfg)
	dir, err := os.MkdirTemp("", "keso-integration-")
	if err != nil {
		return err
	}
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		return err
	}
	if _, err := kube.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: jobNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	// Install the CRD the way an admin (or k3s's auto-deploy) does.
	if out, err := kubectl("apply", "-f", filepath.Join(repoRoot, "overlay/usr/share/keso/manifests/osversion-crd.yaml")); err != nil {
		return fmt.Errorf("kubectl apply CRD: %v\n%s", err, out)
	}
	if out, err := kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/osversions.keso.io"); err != nil {
		return fmt.Errorf("wait for CRD: %v\n%s", err, out)
	}
	// The shipped namespace, RBAC and Deployment (no kubelet runs it here).
	if out, err := kubectl("apply", "-f", filepath.Join(repoRoot, "overlay/usr/share/keso/manifests/keso-operator.yaml")); err != nil {
		return fmt.Errorf("kubectl apply keso-operator.yaml: %v\n%s", err, out)
	}
	// The operator processes authenticate as the shipped service account,
	// so every test also proves that its RBAC is enough.
	sa, err := env.AddUser(envtest.User{
		Name:   "system:serviceaccount:keso-system:keso-operator",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:keso-system", "system:authenticated"},
	}, nil)
	if err != nil {
		return fmt.Errorf("add service-account user: %w", err)
	}
	saKC, err := sa.KubeConfig()
	if err != nil {
		return err
	}
	operatorKubeconfig = filepath.Join(dir, "operator.kubeconfig")
	if err := os.WriteFile(operatorKubeconfig, saKC, 0o600); err != nil {
		return err
	}
	return nil
}

// needEnv fails (CI) or skips (elsewhere) when the API server is missing.
func needEnv(t *testing.T) {
	t.Helper()
	if setupErr == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("integration test needs a real API server (CI must have it): %v", setupErr)
	}
	t.Skipf("SKIPPING integration test: no real API server: %v", setupErr)
}

// kubectl runs the kubectl v1.37.2 built next to kube-apiserver.
func kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(assets, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func kubectlStdin(stdin string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(assets, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// operatorProc is a keso operator running as a child process.
type operatorProc struct {
	cmd *exec.Cmd
	log string
}

// startOperator runs the operator (this test binary re-executed) with test
// timings, as the shipped service account, with the shipped Lease name.
func startOperator(t *testing.T, identity string) *operatorProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), identity+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The renew deadline leaves room for an API server that stalls a few
	// seconds on a loaded machine (a leader that cannot renew in time exits).
	args := fmt.Sprintf("--kubeconfig %s --namespace %s --image keso-test:dev --lease keso-operator --identity %s "+
		"--lease-duration 5s --renew-deadline 4s --retry-period 500ms --resync 200ms --metrics-addr 127.0.0.1:0 --workers 2",
		operatorKubeconfig, jobNamespace, identity)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KESO_TEST_OPERATOR=1", "KESO_TEST_OPERATOR_ARGS="+args)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &operatorProc{cmd: cmd, log: logPath}
	t.Cleanup(func() {
		p.kill()
		f.Close()
		if t.Failed() || os.Getenv("KESO_TEST_OPERATOR_LOG") == "1" {
			b, _ := os.ReadFile(logPath)
			t.Logf("operator %s log:\n%s", identity, tail(string(b), 60))
		}
	})
	return p
}

// kill sends SIGKILL: no cleanup, no lease release.
func (p *operatorProc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// eventually polls cond until it returns true or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, last)
}

// peakRSS is the operator process's VmHWM from /proc (Linux).
func (p *operatorProc) peakRSS() string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "unknown"
}

var metricsAddr = regexp.MustCompile(`metrics on (http://\S+/metrics)`)

// metrics fetches the operator's /metrics page (its address is in the log).
func (p *operatorProc) metrics(t *testing.T) string {
	t.Helper()
	b, _ := os.ReadFile(p.log)
	m := metricsAddr.FindSubmatch(b)
	if m == nil {
		t.Fatalf("operator log has no metrics address")
	}
	resp, err := http.Get(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
