package integration

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
	"github.com/keso-os/keso/pkg/image/build"
	"github.com/keso-os/keso/pkg/operator"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func allOK(string, int) behaviour { return upgradeOK }

// TestKubectlSchema applies valid and invalid OSVersions with kubectl: the
// schema in the CRD must reject the invalid ones with a useful message.
func TestKubectlSchema(t *testing.T) {
	needEnv(t)
	valid := `apiVersion: keso.io/v1
kind: OSVersion
metadata:
  name: schema-valid
spec:
  version: "1.2.0"
  image: https://releases.example.org/keso-{version}-{arch}.squashfs
  sha256:
    amd64: ` + sum + `
    arm64: ` + sum + `
  nodeSelector:
    matchLabels:
      keso-test: nobody
  concurrency: 2
  maxRate: 56Ki
  drain:
    timeout: 5m
    deleteEmptyDirData: true
  window:
    days: [Sat, Sun]
    start: "01:00"
    end: "05:00"
    timeZone: Europe/Berlin
`
	out, err := kubectlStdin(valid, "apply", "-f", "-")
	if err != nil {
		t.Fatalf("kubectl apply valid OSVersion: %v\n%s", err, out)
	}
	t.Cleanup(func() { kubectl("delete", "osversion", "schema-valid", "--ignore-not-found") })

	invalid := []struct {
		name, from, to, want string
	}{
		{"missing version", `  version: "1.2.0"` + "\n", "", `spec.version: Required value`},
		{"bad version", `version: "1.2.0"`, `version: "latest"`, `spec.version: Invalid value`},
		{"bad scheme", `image: https://`, `image: ftp://`, `spec.image: Invalid value`},
		{"image without version", `keso-{version}-{arch}`, `keso-{arch}`, `image must contain {version}`},
		{"short sha256", "amd64: " + sum, "amd64: abc", `spec.sha256.amd64: Invalid value`},
		{"unknown arch", "arm64: " + sum, "riscv: " + sum, `sha256 keys must be keso architecture names: amd64, arm64 or armv7`},
		{"arm instead of armv7", "arm64: " + sum, "arm: " + sum, `use armv7, keso's name for 32-bit ARM`},
		{"concurrency 0", "concurrency: 2", "concurrency: 0", `spec.concurrency: Invalid value: 0`},
		{"both limits", "concurrency: 2", "concurrency: 2\n  maxUnavailable: 10%", `set concurrency or maxUnavailable, not both`},
		{"bad day", "days: [Sat, Sun]", "days: [Saturday]", `spec.window.days[0]: Unsupported value: "Saturday"`},
		{"bad start", `start: "01:00"`, `start: "1am"`, `spec.window.start: Invalid value`},
		{"bad timeout", "timeout: 5m", "timeout: soon", `spec.drain.timeout: Invalid value`},
		{"bad maxRate", "maxRate: 56Ki", "maxRate: fast", `spec.maxRate: Invalid value`},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(strings.Replace(valid, "schema-valid", "schema-invalid", 1), tt.from, tt.to, 1)
			if doc == strings.Replace(valid, "schema-valid", "schema-invalid", 1) {
				t.Fatalf("test bug: %q not found in the valid document", tt.from)
			}
			out, err := kubectlStdin(doc, "apply", "-f", "-")
			if err == nil {
				kubectl("delete", "osversion", "schema-invalid")
				t.Fatalf("kubectl apply accepted an invalid OSVersion (%s):\n%s", tt.name, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("kubectl apply rejected it, but the message lacks %q:\n%s", tt.want, out)
			}
		})
	}

	explain, err := kubectl("explain", "osversion.spec")
	if err != nil {
		t.Fatalf("kubectl explain: %v\n%s", err, explain)
	}
	for _, field := range []string{"version", "image", "sha256", "nodeSelector", "concurrency", "maxUnavailable", "maxRate", "drain", "paused", "window", "upgradeTimeout"} {
		if !strings.Contains(explain, "  "+field+"\t") {
			t.Errorf("kubectl explain osversion.spec does not list %s", field)
		}
	}
	t.Logf("kubectl explain osversion.spec:\n%s", explain)
	writeTranscript(t, "explain-osversion-spec.txt", explain)
	drain, _ := kubectl("explain", "osversion.spec.drain")
	writeTranscript(t, "explain-osversion-spec-drain.txt", drain)
}

// writeTranscript saves kubectl output for the docs when KESO_TRANSCRIPTS
// names a folder.
func writeTranscript(t *testing.T, name, s string) {
	if dir := os.Getenv("KESO_TRANSCRIPTS"); dir != "" {
		if err := os.WriteFile(dir+"/"+name, []byte(s), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// TestRollout100Nodes upgrades 100 nodes five at a time.
func TestRollout100Nodes(t *testing.T) {
	needEnv(t)
	// KESO_ROLLOUT_NODES / KESO_ROLLOUT_CONCURRENCY scale this test up for
	// bench/RESULTS.md; make test runs 100 nodes, 5 at a time.
	const group = "roll"
	n, conc := envInt("KESO_ROLLOUT_NODES", 100), envInt("KESO_ROLLOUT_CONCURRENCY", 5)
	names := makeNodes(t, group, n, "1.0.0")
	s := newSim(t, group, 30*time.Millisecond, allOK)
	op := startOperator(t, "op-roll")
	start := time.Now()
	makeOSVersion(t, group, "1.1.0", func(s *kesov1.OSVersionSpec) { s.Concurrency = ptr.To(int32(conc)) })
	o := waitState(t, group, operator.StateComplete, time.Duration(2*n/conc+60)*time.Second)
	t.Logf("%d nodes upgraded %d at a time in %s; operator peak RSS %s", n, conc, time.Since(start).Round(time.Millisecond), op.peakRSS())

	jobs, flips, order, maxCordoned := s.snapshot()
	if maxCordoned > conc {
		t.Errorf("at one moment %d nodes were cordoned, want at most concurrency %d", maxCordoned, conc)
	}
	if maxCordoned < 2 {
		t.Errorf("never more than %d node cordoned at once: concurrency %d not used", maxCordoned, conc)
	}
	if !reflect.DeepEqual(order, names) {
		t.Errorf("upgrade order = %v…, want node name order", order[:min(len(order), 10)])
	}
	for _, name := range names {
		if jobs[name] != 1 || flips[name] != 1 {
			t.Errorf("node %s: %d Jobs, %d upgrades, want exactly 1 each", name, jobs[name], flips[name])
		}
	}
	if int(o.Status.Upgraded) != n || int(o.Status.Total) != n || condition(o, kesov1.ConditionComplete).Status != metav1.ConditionTrue {
		t.Errorf("status: upgraded %d total %d Complete=%s, want %d %d True", o.Status.Upgraded, o.Status.Total, condition(o, kesov1.ConditionComplete).Status, n, n)
	}
	nodes, _ := kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: testLabel + "=" + group})
	for _, nd := range nodes.Items {
		if nd.Spec.Unschedulable || nd.Status.NodeInfo.OSImage != "keso 1.1.0" {
			t.Errorf("node %s: unschedulable %v osImage %q, want schedulable on keso 1.1.0", nd.Name, nd.Spec.Unschedulable, nd.Status.NodeInfo.OSImage)
		}
	}
	metrics := op.metrics(t)
	for _, want := range []string{
		fmt.Sprintf(`keso_operator_nodes{osversion="roll",phase="Upgraded"} %d`, n),
		`keso_operator_nodes{osversion="roll",phase="Upgrading"} 0`,
		fmt.Sprintf(`keso_operator_node_upgrade_duration_seconds_count{osversion="roll"} %d`, n),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	get, _ := kubectl("get", "osversions")
	t.Logf("kubectl get osversions:\n%s", get)
	writeTranscript(t, "get-osversions.txt", get)
	ev, _ := kubectl("get", "events", "-n", "default", "--field-selector", "involvedObject.kind=OSVersion,involvedObject.name="+group)
	if !strings.Contains(ev, "RolloutProgressing") || !strings.Contains(ev, "RolloutComplete") {
		t.Errorf("OSVersion events lack RolloutProgressing/RolloutComplete:\n%s", tail(ev, 10))
	}
	ev, _ = kubectl("get", "events", "-n", "default", "--field-selector", "involvedObject.kind=Node,involvedObject.name="+names[n-1])
	for _, want := range []string{"UpgradeStarted", "UpgradeJobStarted", "Upgraded"} {
		if !strings.Contains(ev, want) {
			t.Errorf("node %s events lack %s:\n%s", names[n-1], want, ev)
		}
	}
}

// TestFailuresHalt: a rollback, a failed Job and a node that never comes
// back each halt the rollout, naming the node and the reason; nothing else
// starts; a resume retries the node.
func TestFailuresHalt(t *testing.T) {
	needEnv(t)
	startOperator(t, "op-fail")
	for _, tc := range []struct {
		group  string
		b      behaviour
		reason string
	}{
		{"rb", rollBack, "RolledBack"},
		{"jf", jobFails, "JobFailed"},
		{"to", hang, "Timeout"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			names := makeNodes(t, tc.group, 6, "1.0.0")
			bad := names[2]
			s := newSim(t, tc.group, 30*time.Millisecond, func(node string, attempt int) behaviour {
				if node == bad && attempt == 1 {
					return tc.b
				}
				return upgradeOK
			})
			makeOSVersion(t, tc.group, "1.1.0", func(s *kesov1.OSVersionSpec) {
				s.Concurrency = ptr.To[int32](1)
				s.UpgradeTimeout = &metav1.Duration{Duration: 3 * time.Second}
			})
			o := waitState(t, tc.group, operator.StateHalted, time.Minute)
			h := condition(o, kesov1.ConditionHalted)
			if h.Status != metav1.ConditionTrue || !strings.Contains(h.Message, bad) || !strings.Contains(h.Message, tc.reason) {
				t.Errorf("Halted condition = %s %q, want True naming %s and %s", h.Status, h.Message, bad, tc.reason)
			}
			if tc.b == rollBack {
				// The node's keso.io/rollback arrives after the kubelet's
				// osImage; the halt reason must show it once it does.
				eventually(t, 30*time.Second, "status.message with keso.io/rollback", func() (bool, error) {
					o := getOSV(t, tc.group)
					return strings.Contains(o.Status.Message, bad) && strings.Contains(o.Status.Message, "simulated failed trial"),
						fmt.Errorf("status.message = %q", o.Status.Message)
				})
			}
			time.Sleep(1500 * time.Millisecond) // nothing may start while halted
			jobs, _, order, _ := s.snapshot()
			if !reflect.DeepEqual(order, names[:3]) {
				t.Errorf("Jobs while halted for nodes %v, want only %v", order, names[:3])
			}
			if o = getOSV(t, tc.group); o.Status.Upgraded != 2 {
				t.Errorf("upgraded = %d, want 2 (the nodes before %s)", o.Status.Upgraded, bad)
			}
			// Resume: the failed node is retried and the rollout finishes.
			patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"1"}}}`, operator.ResumeAnnotation)
			if _, err := keso.KesoV1().OSVersions().Patch(context.Background(), tc.group, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			waitState(t, tc.group, operator.StateComplete, time.Minute)
			jobs, _, _, _ = s.snapshot()
			if jobs[bad] != 2 {
				t.Errorf("node %s had %d Jobs, want 2 (failed attempt + retry after resume)", bad, jobs[bad])
			}
		})
	}
}

// TestPausedAndWindow: stage by day, switch by night. Paused, nothing
// runs; outside the window every node stages (all at once, reporting its
// progress in the status and kubectl's columns) and none is cordoned; a
// newer version before the window is staged again; in the window the
// nodes upgrade one at a time, each after its stage.
func TestPausedAndWindow(t *testing.T) {
	needEnv(t)
	const group = "pw"
	makeNodes(t, group, 3, "1.0.0")
	s := newSim(t, group, 20*time.Millisecond, allOK)
	startOperator(t, "op-pw")
	now := time.Now().UTC()
	closed := &kesov1.MaintenanceWindow{Start: now.Add(2 * time.Hour).Format("15:04"), End: now.Add(3 * time.Hour).Format("15:04")}
	makeOSVersion(t, group, "1.1.0", func(s *kesov1.OSVersionSpec) { s.Paused = true; s.Window = closed })
	waitState(t, group, operator.StatePaused, 30*time.Second)
	patch := func(p string) {
		t.Helper()
		if _, err := keso.KesoV1().OSVersions().Patch(context.Background(), group, types.MergePatchType, []byte(p), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	patch(`{"spec":{"paused":false}}`)
	o := waitState(t, group, operator.StateWaiting, 30*time.Second)
	if c := condition(o, kesov1.ConditionProgressing); !strings.Contains(c.Message, "outside the maintenance window") {
		t.Errorf("Progressing message = %q, want it to name the window", c.Message)
	}
	// Stage by day: every node stages at once (concurrency 1 does not
	// hold staging back), reports its progress, and nothing is cordoned
	// or rebooted outside the window.
	eventually(t, 30*time.Second, "all 3 nodes staged outside the window", func() (bool, error) {
		o := getOSV(t, group)
		return o.Status.Staged == 3 && o.Status.State == operator.StateWaiting, fmt.Errorf("state %s, staged %d, fetched %q", o.Status.State, o.Status.Staged, o.Status.Fetched)
	})
	o = getOSV(t, group)
	if got, want := o.Status.Fetched, "12.0Mi/12.0Mi"; got != want {
		t.Errorf("status.fetched = %q, want %q", got, want)
	}
	for _, n := range o.Status.Nodes {
		if !n.Staged || n.Fetched != 4<<20 || n.Needed != 4<<20 || n.Phase != kesov1.NodePending || n.Message != "staged; switches in the maintenance window" {
			t.Errorf("node %s status %+v, want Pending, staged, 4 MiB of 4 MiB, waiting for the window", n.Name, n)
		}
	}
	if !strings.Contains(o.Status.Message, "outside the maintenance window") {
		t.Errorf("status.message = %q, want it to name the window", o.Status.Message)
	}
	wide, err := kubectl("get", "osversion", group, "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^NAME\s+VERSION\s+UPGRADED\s+TOTAL\s+STAGED\s+STATUS\s+AGE\s+FETCHED\s+MESSAGE$`).MatchString(wide) ||
		!regexp.MustCompile(`(?m)^pw\s+1\.1\.0\s+0\s+3\s+3\s+Waiting\s+\S+\s+12\.0Mi/12\.0Mi\s`).MatchString(wide) {
		t.Errorf("kubectl get osversion -o wide:\n%s\nwant columns STAGED 3 and FETCHED 12.0Mi/12.0Mi", wide)
	}
	t.Logf("kubectl get osversion -o wide, staged outside the window:\n%s", wide)

	// A newer version before the window: the nodes stage again.
	patch(`{"spec":{"version":"1.2.0","sha256":{"amd64":"` + strings.Repeat("1", 64) + `"}}}`)
	eventually(t, 30*time.Second, "all 3 nodes staged 1.2.0", func() (bool, error) {
		o := getOSV(t, group)
		return o.Status.Staged == 3 && o.Status.ObservedGeneration == o.Generation, fmt.Errorf("staged %d, fetched %q", o.Status.Staged, o.Status.Fetched)
	})
	time.Sleep(time.Second)
	if jobs, _, _, maxCordoned := s.snapshot(); len(jobs) != 0 || maxCordoned != 0 {
		t.Fatalf("upgrade Jobs %v, %d nodes cordoned at once, while paused or outside the window; want none", jobs, maxCordoned)
	}

	// Switch by night.
	opened := time.Now()
	open := fmt.Sprintf(`{"spec":{"window":{"start":%q,"end":%q}}}`, now.Add(-time.Hour).Format("15:04"), now.Add(time.Hour).Format("15:04"))
	patch(open)
	waitState(t, group, operator.StateComplete, time.Minute)
	stages, first := s.staged()
	_, flips, _, _ := s.snapshot()
	for _, n := range []string{"pw-000", "pw-001", "pw-002"} {
		var got []string
		for _, r := range stages[n] {
			got = append(got, r.Target)
		}
		if want := []string{"1.1.0", "1.2.0"}; !reflect.DeepEqual(got, want) {
			t.Errorf("node %s: stage Jobs for %v, want %v", n, got, want)
		}
		if len(stages[n]) > 0 && (first[n].Before(stages[n][len(stages[n])-1].Done) || first[n].Before(opened)) {
			t.Errorf("node %s: upgrade Job at %s, staged at %s, window opened at %s: want it after both", n, first[n], stages[n][len(stages[n])-1].Done, opened)
		}
		if flips[n] != 1 {
			t.Errorf("node %s rebooted into a new version %d times, want once (into 1.2.0)", n, flips[n])
		}
		if v, _ := nodeVersion(context.Background(), n); v != "1.2.0" {
			t.Errorf("node %s runs %q, want 1.2.0", n, v)
		}
	}
}

// TestDrainRespectsPDB: a PodDisruptionBudget holds the drain until it
// allows the eviction. (With no disruption controller here the budget's
// status is never computed, and kube-apiserver holds the eviction request
// open until the budget goes away; in a cluster it answers 429.)
func TestDrainRespectsPDB(t *testing.T) {
	needEnv(t)
	const group = "pdb"
	ctx := context.Background()
	names := makeNodes(t, group, 1, "1.0.0")
	s := newSim(t, group, 20*time.Millisecond, allOK)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "pdb-test"}}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "pdb-test", Labels: map[string]string{"app": "web"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "0c1d7a3e-0000-4000-8000-000000000002", Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: names[0], Containers: []corev1.Container{{Name: "c", Image: "x"}}},
	}
	created, err := kube.CoreV1().Pods("pdb-test").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A Pending pod may be evicted whatever its budget says; make it
	// Running and Ready as a kubelet would.
	created.Status.Phase = corev1.PodRunning
	created.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if _, err := kube.CoreV1().Pods("pdb-test").UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "pdb-test"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(0)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
	if _, err := kube.PolicyV1().PodDisruptionBudgets("pdb-test").Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startOperator(t, "op-pdb")
	makeOSVersion(t, group, "1.1.0", nil)
	eventually(t, 30*time.Second, "node Draining", func() (bool, error) {
		o := getOSV(t, group)
		return len(o.Status.Nodes) == 1 && o.Status.Nodes[0].Phase == kesov1.NodeDraining, nil
	})
	time.Sleep(2 * time.Second)
	if jobs, _, _, _ := s.snapshot(); len(jobs) != 0 {
		t.Fatalf("upgrade Job started although the PDB forbids evicting pdb-test/web")
	}
	if _, err := kube.CoreV1().Pods("pdb-test").Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Fatalf("pod evicted despite the PDB: %v", err)
	}
	if err := kube.PolicyV1().PodDisruptionBudgets("pdb-test").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	waitState(t, group, operator.StateComplete, time.Minute)
	t.Logf("drained and upgraded %s after the PDB was removed", time.Since(released).Round(time.Millisecond))
	if _, err := kube.CoreV1().Pods("pdb-test").Get(ctx, "web", metav1.GetOptions{}); err == nil {
		t.Errorf("pod pdb-test/web still on the node after the drain")
	}
}

// TestKillAndRestart SIGKILLs the operator mid-rollout; a second replica
// (leader election) finishes, every node upgraded exactly once, and a
// standby replica never acts while another leads.
func TestKillAndRestart(t *testing.T) {
	needEnv(t)
	const group, n, conc = "kill", 30, 3
	names := makeNodes(t, group, n, "1.0.0")
	s := newSim(t, group, 100*time.Millisecond, allOK)
	first := startOperator(t, "op-kill-1")
	start := time.Now()
	makeOSVersion(t, group, "1.1.0", func(s *kesov1.OSVersionSpec) { s.Concurrency = ptr.To[int32](conc) })
	eventually(t, time.Minute, "10 nodes upgraded", func() (bool, error) {
		_, flips, _, _ := s.snapshot()
		return len(flips) >= 10, nil
	})
	first.kill()
	killedAt := time.Now()
	_, flipsAtKill, _, _ := s.snapshot()
	t.Logf("killed the operator after %d upgrades", len(flipsAtKill))
	second := startOperator(t, "op-kill-2")
	third := startOperator(t, "op-kill-3") // standby
	o := waitState(t, group, operator.StateComplete, 2*time.Minute)
	t.Logf("rollout finished %s after the kill (%s total)", time.Since(killedAt).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	jobs, flips, order, maxCordoned := s.snapshot()
	for _, name := range names {
		if jobs[name] != 1 || flips[name] != 1 {
			t.Errorf("node %s: %d Jobs, %d upgrades, want exactly 1 each", name, jobs[name], flips[name])
		}
	}
	if maxCordoned > conc {
		t.Errorf("%d nodes cordoned at once, want at most %d", maxCordoned, conc)
	}
	sorted := append([]string(nil), order...)
	sort.Strings(sorted)
	if !reflect.DeepEqual(order, sorted) {
		t.Errorf("order %v not stable across the restart", order)
	}
	if o.Status.Upgraded != n {
		t.Errorf("upgraded = %d, want %d", o.Status.Upgraded, n)
	}
	// Exactly one of the two new replicas led and acted.
	var leaders, actors int
	for _, p := range []*operatorProc{second, third} {
		b, _ := os.ReadFile(p.log)
		if strings.Contains(string(b), ": leading (Lease") {
			leaders++
		}
		if strings.Contains(string(b), "started upgrade") || strings.Contains(string(b), "upgraded to") {
			actors++
		}
	}
	if leaders != 1 || actors != 1 {
		t.Errorf("%d replicas led and %d acted after the kill, want 1 and 1", leaders, actors)
	}
}

// TestRBACLeastPrivilege checks the shipped service account's permissions
// against the API server's authorizer: what the operator needs is allowed,
// the rest is denied.
func TestRBACLeastPrivilege(t *testing.T) {
	needEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "nodes"}, "yes"},
		{[]string{"update", "nodes"}, "yes"},
		{[]string{"update", "osversions.keso.io", "--subresource=status"}, "yes"},
		{[]string{"create", "pods", "--subresource=eviction", "-n", "any"}, "yes"},
		{[]string{"create", "jobs.batch", "-n", "keso-system"}, "yes"},
		{[]string{"update", "leases.coordination.k8s.io/keso-operator", "-n", "keso-system"}, "yes"},
		{[]string{"create", "events", "-n", "default"}, "yes"},
		{[]string{"update", "osversions.keso.io"}, "no"},
		{[]string{"delete", "nodes"}, "no"},
		{[]string{"delete", "pods", "-n", "any"}, "no"},
		{[]string{"get", "secrets", "-n", "keso-system"}, "no"},
		{[]string{"create", "jobs.batch", "-n", "default"}, "no"},
		{[]string{"update", "leases.coordination.k8s.io/other", "-n", "keso-system"}, "no"},
		{[]string{"create", "pods", "-n", "keso-system"}, "no"},
	} {
		out, _ := kubectl(append([]string{"--kubeconfig", operatorKubeconfig, "auth", "can-i"}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n") // warnings come first
		if got := lines[len(lines)-1]; got != tc.want {
			t.Errorf("service account can-i %v = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestRollbackAfterSuccessHalts: a node that the operator counted Upgraded
// (Ready, committed) and that then falls back to the old version halts the
// rollout naming it, and is not upgraded again (no loop) until a resume.
func TestRollbackAfterSuccessHalts(t *testing.T) {
	needEnv(t)
	const group = "ras"
	names := makeNodes(t, group, 3, "1.0.0")
	bad := names[1]
	s := newSim(t, group, 50*time.Millisecond, func(node string, attempt int) behaviour {
		if node == bad && attempt == 1 {
			return rollBackAfterSuccess
		}
		return upgradeOK
	})
	startOperator(t, "op-ras")
	makeOSVersion(t, group, "1.1.0", nil)
	o := waitState(t, group, operator.StateHalted, time.Minute)
	h := condition(o, kesov1.ConditionHalted)
	if h.Status != metav1.ConditionTrue || h.Reason != "RolledBackAfterUpgrade" || !strings.Contains(h.Message, bad) {
		t.Errorf("Halted condition = %s %s %q, want True RolledBackAfterUpgrade naming %s", h.Status, h.Reason, h.Message, bad)
	}
	// The node says why (keso.io/rollback) in a write of its own after the
	// kubelet reported the old osImage: the reason may show a moment later.
	eventually(t, 30*time.Second, "status.message naming "+bad+" and its keso.io/rollback", func() (bool, error) {
		o := getOSV(t, group)
		return strings.Contains(o.Status.Message, bad) && strings.Contains(o.Status.Message, "simulated fallback after commit"),
			fmt.Errorf("status.message = %q", o.Status.Message)
	})
	time.Sleep(2 * time.Second) // a loop would start a second Job here
	jobs, _, _, _ := s.snapshot()
	if jobs[bad] != 1 {
		t.Fatalf("node %s had %d Jobs after rolling back from a counted success, want 1 (no re-upgrade)", bad, jobs[bad])
	}
	if o = getOSV(t, group); o.Status.State != operator.StateHalted {
		t.Errorf("state = %s after 2 s, want still Halted", o.Status.State)
	}
	get, _ := kubectl("get", "osversion", group, "-o", "wide")
	t.Logf("kubectl get osversion -o wide:\n%s", get)
	if !strings.Contains(get, "RolledBackAfterUpgrade") {
		t.Errorf("kubectl get -o wide does not show the reason:\n%s", get)
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"1"}}}`, operator.ResumeAnnotation)
	if _, err := keso.KesoV1().OSVersions().Patch(context.Background(), group, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitState(t, group, operator.StateComplete, time.Minute)
	if jobs, _, _, _ = s.snapshot(); jobs[bad] != 2 {
		t.Errorf("node %s had %d Jobs, want 2 (the resume retried it once)", bad, jobs[bad])
	}
}

// TestMixedFleetJobs: amd64, arm64 and 32-bit ARM nodes (reported "arm")
// each get a Job for the file the builder writes for their arch.
func TestMixedFleetJobs(t *testing.T) {
	needEnv(t)
	const group = "mix"
	archs := []string{"amd64", "arm64", "arm"}
	names := makeArchNodes(t, group, "1.0.0", archs)
	newSim(t, group, 20*time.Millisecond, allOK)
	startOperator(t, "op-mix")
	makeOSVersion(t, group, "1.1.0", func(s *kesov1.OSVersionSpec) {
		s.Concurrency = ptr.To[int32](3)
		s.SHA256 = map[string]kesov1.SHA256Sum{"amd64": sum, "arm64": sum, "armv7": sum}
	})
	waitState(t, group, operator.StateComplete, time.Minute)
	jobs, err := kube.BatchV1().Jobs(jobNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: operator.OSVersionLabel + "=" + group})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, j := range jobs.Items {
		cmd := j.Spec.Template.Spec.Containers[0].Command
		for i, a := range cmd {
			if a == "--image" && i+1 < len(cmd) {
				got[j.Labels[operator.JobLabel]] = cmd[i+1]
			}
		}
	}
	for i, name := range names {
		kesoArch := map[string]string{"amd64": "amd64", "arm64": "arm64", "arm": "armv7"}[archs[i]]
		want := "https://releases.example.org/" + build.UpgradeImageName("1.1.0", kesoArch)
		if got[name] != want {
			t.Errorf("node %s (%s): Job --image %q, want %q (the builder's file)", name, archs[i], got[name], want)
		}
	}
}

// TestJobBlockedByPodSecurity: with PodSecurity enforcing "baseline" on
// the Jobs' namespace, the API server accepts the privileged upgrade Job
// (with a warning) but refuses its pod. The operator shows why (node
// message, condition Blocked, status.message, events), then gives the node
// back (uncordoned, Job deleted) and halts; the next node is never touched.
func TestJobBlockedByPodSecurity(t *testing.T) {
	needEnv(t)
	const group = "psa"
	ctx := context.Background()
	setLabel := func(v string) {
		patch := fmt.Sprintf(`{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":%q}}}`, v)
		if _, err := kube.CoreV1().Namespaces().Patch(ctx, jobNamespace, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ns, err := kube.CoreV1().Namespaces().Get(ctx, jobNamespace, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prev := ns.Labels["pod-security.kubernetes.io/enforce"]
	setLabel("baseline")
	t.Cleanup(func() { setLabel(prev) })

	names := makeNodes(t, group, 2, "1.0.0")
	s := newSim(t, group, 20*time.Millisecond, allOK)
	s.admitPods = true
	startOperator(t, "op-psa")
	makeOSVersion(t, group, "1.1.0", func(s *kesov1.OSVersionSpec) {
		s.Drain.Timeout = &metav1.Duration{Duration: 6 * time.Second} // JobStartTimeout 6s, Blocked after 3s
	})
	eventually(t, 30*time.Second, "condition Blocked", func() (bool, error) {
		o := getOSV(t, group)
		c := condition(o, kesov1.ConditionBlocked)
		return c.Status == metav1.ConditionTrue && strings.Contains(c.Message, names[0]) && strings.Contains(c.Message, "PodSecurity"),
			fmt.Errorf("Blocked = %s %q", c.Status, c.Message)
	})
	o := waitState(t, group, operator.StateHalted, time.Minute)
	for _, want := range []string{names[0], "JobNotStarted", `would violate PodSecurity "baseline`, "privileged"} {
		if !strings.Contains(o.Status.Message, want) {
			t.Errorf("status.message = %q, want it to contain %q", o.Status.Message, want)
		}
	}
	if len(s.refusals()) == 0 {
		t.Errorf("the API server admitted the Job's pod: PodSecurity did not enforce baseline")
	}
	node, err := kube.CoreV1().Nodes().Get(ctx, names[0], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Spec.Unschedulable {
		t.Errorf("node %s still cordoned after the operator gave up on its Job", names[0])
	}
	// Upgrade Jobs only: the stage Jobs (refused their pods too) stage,
	// which is harmless, if the policy changes.
	jobs, _ := kube.BatchV1().Jobs(jobNamespace).List(ctx, metav1.ListOptions{LabelSelector: operator.OSVersionLabel + "=" + group + ",!" + operator.StepLabel})
	if len(jobs.Items) != 0 {
		t.Errorf("%d upgrade Jobs left after the node was given back, want 0 (deleted)", len(jobs.Items))
	}
	if j, _, _, _ := s.snapshot(); j[names[1]] != 0 {
		t.Errorf("node %s got a Job although the rollout is halted", names[1])
	}
	get, _ := kubectl("get", "osversion", group, "-o", "wide")
	t.Logf("kubectl get osversion -o wide:\n%s", get)
	if !strings.Contains(get, "PodSecurity") {
		t.Errorf("kubectl get osversion -o wide does not say what to fix:\n%s", get)
	}
	ev, _ := kubectl("get", "events", "-n", "default", "--field-selector", "involvedObject.kind=OSVersion,involvedObject.name="+group)
	t.Logf("events:\n%s", ev)
	if !strings.Contains(ev, "UpgradeBlocked") && !strings.Contains(ev, "NodeFailed") {
		t.Errorf("OSVersion events lack UpgradeBlocked/NodeFailed:\n%s", ev)
	}
}
