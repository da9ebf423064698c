// Command k3s-standin is a TEST FIXTURE that stands in for k3s in keso's
// QEMU boot tests, because the real k3s binary cannot be fetched on the
// build machines. It is never shipped as k3s: only tests pass it to the
// builder with --k3s.
//
// It records what it was handed — argv, selected environment, the k3s
// config file, /run/keso/boot.json, the mounts on /, /var, /etc and the
// state partition, and the size of /var — prints that as one line
// `KESO-K3S-STANDIN {json}` on the console, writes it to
// /run/k3s-standin.json, then answers like a healthy server (plain HTTP
// /readyz on :6443) until it is killed.
//
// Like k3s it also writes the kubelet's kubeconfig and credentials
// (/var/lib/rancher/k3s/agent/kubelet.kubeconfig) and answers for its own
// Node over TLS on 127.0.0.1:6444: Ready, osImage from /etc/os-release,
// and the annotations keso merge-patches onto it, recorded in
// /run/k3s-standin-node.json (node.go).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/keso-os/keso/pkg/host"
)

// Record is what the stand-in saw; tests decode it from the console line.
type Record struct {
	Argv       []string          `json:"argv"`
	Pid        int               `json:"pid"`
	Env        map[string]string `json:"env"`
	ConfigYAML *string           `json:"config_yaml"`
	BootJSON   json.RawMessage   `json:"boot_json"`
	Mounts     map[string]Mount  `json:"mounts"`
	Var        *FSSize           `json:"var_df"`
	OSRelease  string            `json:"os_release"`
	NodeName   string            `json:"node_name"`   // k3s's rules (pkg/k3s Handoff.NodeName)
	KubeletAPI string            `json:"kubelet_api"` // the kubelet kubeconfig's server, "" when none
	Errors     []string          `json:"errors,omitempty"`
}

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	FSType  string `json:"fstype"`
	Source  string `json:"source"`
	Root    string `json:"root"` // path inside the source (bind mounts)
	Options string `json:"options"`
}

// FSSize is statfs of a mount point.
type FSSize struct {
	TotalBytes uint64 `json:"total_bytes"`
	FreeBytes  uint64 `json:"free_bytes"`
	BlockSize  int64  `json:"block_size"`
}

// testFixtureMarker tells keso-build this binary is a test fixture, not
// k3s: it refuses a k3s carrying the marker unless given --test-fixture
// (pkg/image/build.TestFixtureMarker). main prints it for --version, so the
// linker keeps it even with -s -w.
var testFixtureMarker = "KESO-TEST-FIXTURE-NOT-K3S"

// exitAtOnce, set with -ldflags "-X main.exitAtOnce=1", makes the stand-in
// exit with that status right after recording: a release whose k3s is
// broken, for the upgrade rollback tests.
var exitAtOnce string

var watched = []string{"/", "/var", "/etc", "/tmp", "/run", "/keso/state"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		fmt.Printf("k3s-standin (%s): a keso test fixture, not k3s\n", testFixtureMarker)
		return
	}
	rec := Record{Argv: os.Args, Pid: os.Getpid(), Env: map[string]string{}, Mounts: map[string]Mount{}}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if k == "PATH" || k == "HOME" || strings.HasPrefix(k, "K3S_") || strings.HasPrefix(k, "KESO_") {
			rec.Env[k] = v
		}
	}
	configYAML, err := os.ReadFile("/etc/rancher/k3s/config.yaml")
	if err == nil {
		s := string(configYAML)
		rec.ConfigYAML = &s
	}
	if b, err := os.ReadFile("/run/keso/boot.json"); err == nil && json.Valid(b) {
		rec.BootJSON = b
	} else {
		rec.Errors = append(rec.Errors, fmt.Sprintf("boot.json: %v", err))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		rec.OSRelease = string(b)
	}
	if err := readMounts(rec.Mounts); err != nil {
		rec.Errors = append(rec.Errors, err.Error())
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/var", &st); err == nil {
		rec.Var = &FSSize{TotalBytes: st.Blocks * uint64(st.Bsize), FreeBytes: st.Bavail * uint64(st.Bsize), BlockSize: int64(st.Bsize)}
	} else {
		rec.Errors = append(rec.Errors, fmt.Sprintf("statfs /var: %v", err))
	}
	hostname, err := os.Hostname()
	if err != nil {
		rec.Errors = append(rec.Errors, fmt.Sprintf("hostname: %v", err))
	}
	rec.NodeName = nodeName(os.Args, os.Environ(), configYAML, hostname)
	out := os.Stdout
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		out = c
	}
	if exitAtOnce == "" {
		// A k3s that dies at once writes no credentials (a stale kubeconfig
		// from an earlier boot may remain on /var, pointing nowhere).
		if n, _, _, err := startKubeletAPI(host.FS{Root: "/"}, kubeletAPIAddr, rec.NodeName, osImage(rec.OSRelease), out); err != nil {
			rec.Errors = append(rec.Errors, fmt.Sprintf("kubelet API: %v", err))
		} else {
			rec.KubeletAPI = n.rec.Server
		}
	}
	b, _ := json.Marshal(rec)
	line := "KESO-K3S-STANDIN " + string(b) + "\n"
	if err := os.WriteFile("/run/k3s-standin.json", b, 0o644); err != nil {
		line += fmt.Sprintf("k3s-standin: write /run/k3s-standin.json: %v\n", err)
	}
	out.WriteString(line)
	if exitAtOnce != "" {
		// The broken-release fixture: a k3s that dies right after start.
		fmt.Fprintf(out, "k3s-standin: exiting at once with status %s (built as a broken k3s)\n", exitAtOnce)
		code := 1
		fmt.Sscan(exitAtOnce, &code)
		os.Exit(code)
	}
	http.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	if err := http.ListenAndServe(":6443", nil); err != nil {
		fmt.Fprintf(out, "k3s-standin: listen :6443: %v\n", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// readMounts fills m with the last mount on each watched mount point.
func readMounts(m map[string]Mount) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	return parseMountinfo(f, m)
}

// parseMountinfo reads mountinfo lines; a later mount on the same point wins.
func parseMountinfo(r io.Reader, m map[string]Mount) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 6 || len(b) < 2 {
			continue
		}
		for _, w := range watched {
			if a[4] == w {
				m[w] = Mount{FSType: b[0], Source: b[1], Root: a[3], Options: a[5]}
			}
		}
	}
	return sc.Err()
}
