package k3s

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/cloudconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// render is the golden form of a Handoff.
func render(h Handoff) string {
	var b strings.Builder
	fmt.Fprintf(&b, "role: %s\nargv:\n", h.Role)
	for _, a := range h.Argv {
		fmt.Fprintf(&b, "  %s\n", a)
	}
	b.WriteString("env:\n")
	for _, e := range h.Env {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	b.WriteString("problems:\n")
	for _, p := range h.Problems {
		fmt.Fprintf(&b, "  %s: %s\n", p.Path, p.Msg)
	}
	fmt.Fprintf(&b, "--- %s\n%s", ConfigFile, h.ConfigYAML)
	return b.String()
}

func TestPlanGolden(t *testing.T) {
	inputs := map[string]string{
		"server":          "../../config-examples/01-single-node-store-server.yaml",
		"agent":           "../../config-examples/02-store-agent.yaml",
		"ha-cluster-init": "../../config-examples/03-ha-server-first.yaml",
		"ha-join":         "../../config-examples/04-ha-server-join.yaml",
		"proxy":           "../../config-examples/07-proxy-airgap-mirror.yaml",
		"k3os-docs":       "../../config-examples/11-k3os-documentation.yaml",
		"k3os-flat-agent": "testdata/k3os-flat-agent.yaml",
		"merge-conflicts": "testdata/merge-conflicts.yaml",
		"agent-no-server": "testdata/agent-without-server.yaml",
		"empty":           "testdata/empty.yaml",
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			res := cloudconfig.LoadFile(in, data)
			// agent-no-server: the validator drops the invalid values; the
			// plan is made from what is left.
			if errs := res.Diagnostics.Errors(); len(errs) > 0 && name != "agent-no-server" {
				t.Fatalf("%s has config errors: %v", in, errs)
			}
			got := render(Plan(res.Config))
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Plan(%s):\ngot:\n%s\nwant (%s):\n%s", in, got, golden, want)
			}
		})
	}
}

// The plan is pure: the same config gives byte-identical output, whatever
// Go's map order.
func TestPlanDeterministic(t *testing.T) {
	data, err := os.ReadFile("testdata/merge-conflicts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := cloudconfig.LoadFile("m.yaml", data).Config
	first := render(Plan(cfg))
	for i := 0; i < 20; i++ {
		if got := render(Plan(cfg)); got != first {
			t.Fatalf("run %d differs:\n%s\nfirst:\n%s", i, got, first)
		}
	}
}

// Plan's own checks, for configs the validator did not see (built in Go).
func TestPlanProblems(t *testing.T) {
	h := Plan(cloudconfig.Config{Keso: cloudconfig.System{K3s: &cloudconfig.K3s{Role: "agent", ClusterInit: true}}})
	var paths []string
	for _, p := range h.Problems {
		paths = append(paths, p.Path)
	}
	want := []string{"keso.k3s.cluster_init", "keso.k3s.role"}
	if strings.Join(paths, ",") != strings.Join(want, ",") || h.Role != "agent" || strings.Contains(string(h.ConfigYAML), "cluster-init") {
		t.Errorf("agent with cluster_init and no server: got role %s problems %v config %q; want agent, problems at %v, no cluster-init", h.Role, h.Problems, h.ConfigYAML, want)
	}
}

// Every problem names a config path the runner can turn into file:line.
func TestPlanProblemsHavePositions(t *testing.T) {
	data, err := os.ReadFile("testdata/merge-conflicts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res := cloudconfig.LoadFile("m.yaml", data)
	probs := Plan(res.Config).Problems
	if len(probs) == 0 {
		t.Fatal("merge-conflicts.yaml: no problems, want several")
	}
	for _, p := range probs {
		if _, line, _, ok := res.Position(p.Path); !ok || line == 0 {
			t.Errorf("problem %q: path %q has no position in the config", p.Msg, p.Path)
		}
	}
}

func TestNodeNameAndKubelet(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        cloudconfig.System
		want       string
		runsKubelt bool
	}{
		{"hostname", cloudconfig.System{}, "store-0042", true},
		{"config", cloudconfig.System{K3s: &cloudconfig.K3s{Config: map[string]any{"node-name": "from-config"}}}, "from-config", true},
		{"args win over config", cloudconfig.System{K3sArgs: []string{"agent", "--node-name", "from-args"}, ServerURL: "https://s:6443",
			K3s: &cloudconfig.K3s{Config: map[string]any{"node-name": "from-config"}}}, "from-args", true},
		{"args with =", cloudconfig.System{K3s: &cloudconfig.K3s{Args: []string{"--node-name=a", "--node-name=b"}}}, "b", true},
		{"environment", cloudconfig.System{Environment: map[string]string{"K3S_NODE_NAME": "from-env"}}, "from-env", true},
		{"server without agent", cloudconfig.System{K3sArgs: []string{"server", "--disable-agent"}}, "store-0042", false},
		{"server without agent (config)", cloudconfig.System{K3s: &cloudconfig.K3s{Config: map[string]any{"disable-agent": true}}}, "store-0042", false},
	} {
		h := Plan(cloudconfig.Config{Keso: tc.cfg})
		if got := h.NodeName("Store-0042"); got != tc.want {
			t.Errorf("%s: NodeName = %q, want %q (argv %v)", tc.name, got, tc.want, h.Argv)
		}
		if got := h.RunsKubelet(); got != tc.runsKubelt {
			t.Errorf("%s: RunsKubelet = %v, want %v", tc.name, got, tc.runsKubelt)
		}
	}
}
