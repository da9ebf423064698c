package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"golang.org/x/crypto/ssh"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
	"github.com/keso-os/keso/pkg/generated/clientset/versioned"
	"github.com/keso-os/keso/test/e2e/qemu"
)

// The real-node test: two amd64 keso VMs from the raw disk (UEFI) join a
// real control plane on the host as k3s agents (the real-node fixture in
// k3s's place: containerd, runc, CNI and a kubelet v1.37.2), run a
// workload under a PodDisruptionBudget, and upgrade themselves through the
// keso operator when an OSVersion is applied with kubectl: cordon, drain
// by eviction, the operator's Job run by the kubelet under containerd,
// `keso upgrade` writing the other slot, a reboot into the trial, the
// agent's health gate seeing the node Ready through the kubelet's own
// credentials and committing, and only then the node counted upgraded.
// Then a broken release: the first node rolls back by itself and the
// rollout halts without touching the second.
//
// The operator runs on the host against the same API server, not as its
// shipped Deployment: pods on these nodes cannot reach the API server's
// Service address (10.43.0.1), because the fixture runs no kube-proxy
// (k3s embeds one; the fixture only has what the test needs to run pods).

// Annotations the node writes on its own Node (pkg/agent; contract with
// pkg/operator).
const (
	annVersion   = "keso.io/version"
	annCommitted = "keso.io/committed"
)

const realNodeConfig = `#cloud-config
hostname: %[1]s
ssh_authorized_keys:
  - %[2]s
k3os:
  server_url: %[3]s
  token: %[4]s
  labels:
    keso.io/fleet: stores
    keso.io/site: %[1]s
  taints:
    - keso.io/edge=%[1]s:NoSchedule
keso:
  ssh:
    root_login: true
  upgrade:
    health_timeout: 3m30s
    health_stable: 90s
`

// realNodeExitAfter is how long the broken release's fixture runs its
// kubelet before it exits: a k3s that dies a minute in. The nodes' health
// gate wants 90 s without an exit (health_stable), so it never commits it,
// however fast the kubelet gets Ready.
const realNodeExitAfter = "60s"

type rnNode struct {
	*testNode
	release func()
	exits   []time.Time // when each VM exited (a reboot)
}

func TestRealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short: the real-node test boots two VMs for ~20 minutes")
	}
	t.Parallel()
	assets := kubeAssets(t)
	// What the run showed (kubectl's tables, the step times, the events)
	// also goes to a file beside the cached artifacts, for the record.
	var record strings.Builder
	rlog := func(format string, args ...any) {
		t.Helper()
		t.Logf(format, args...)
		fmt.Fprintf(&record, format+"\n", args...)
	}
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(cacheRoot(), "realnode-report.txt"), []byte(record.String()), 0o644)
	})
	tree := realNodeTree(t, assets)
	rel := func(name, version, exitAfter string, outputs ...string) *Artifacts {
		return variant(t, "amd64", Variant{Name: name, Version: version, Signed: true, RealNode: true,
			RealNodeExitAfter: exitAfter, Extra: tree, Outputs: outputs})
	}
	v1 := rel("rn-v1", "1.0.0", "", "squashfs", "vmlinuz", "initrd", "raw")
	v2 := rel("rn-v2", "2.0.0", "", "squashfs", "vmlinuz", "initrd")
	v3 := rel("rn-v3", "3.0.0", realNodeExitAfter, "squashfs", "vmlinuz", "initrd")
	srv := serveReleases(t)
	sums := map[string]string{}
	for _, r := range []*Artifacts{v2, v3} {
		img := upgradeImage(t, r)
		srv.publish("releases", img)
		sums[r.Version] = r.SHA256[filepath.Base(img)]
	}

	cp := startControlPlane(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(cfg)
	keso := versioned.NewForConfigOrDie(cfg)
	ctx := context.Background()
	startOperator(t, cp)

	names := []string{"store-1", "store-2"}
	nodes := map[string]*rnNode{}
	for _, name := range names {
		signer, pub := sshKey(t)
		n := &rnNode{testNode: &testNode{t: t, name: name, arch: "amd64", signer: signer, port: freePort(t), mem: 2048, held: true}}
		n.disk = rawCopy(t, v1.file(t, "keso-amd64.img"), 6<<30)
		n.seed = seed(t, fmt.Sprintf(realNodeConfig, name, pub, cp.GuestURL, cp.Token), "instance-id: "+name+"\n")
		n.release = qemu.TakeSlot(t)
		t.Cleanup(n.release)
		nodes[name] = n
		n.start("v1")
	}
	// keepUp boots a node again when its VM ended (the guest rebooted):
	// a real box comes back by itself.
	keepUp := func() {
		for _, name := range names {
			n := nodes[name]
			select {
			case <-n.vm.Exited():
				n.exits = append(n.exits, time.Now())
				n.vm.Stop()
				n.start(fmt.Sprintf("reboot%d", len(n.exits)))
			default:
			}
		}
	}
	waitFor := func(what string, timeout time.Duration, cond func() (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		last := ""
		for {
			keepUp()
			ok, why := cond()
			if ok {
				return
			}
			if why != last {
				t.Logf("waiting for %s: %s", what, why)
				last = why
			}
			if time.Now().After(deadline) || strings.HasPrefix(why, "Halted") && !strings.Contains(what, "halt") {
				out, _ := cp.kubectl("get", "nodes,pods,jobs,osversions", "-A", "-o", "wide")
				for _, name := range names {
					out += nodes[name].podLogs()
				}
				t.Fatalf("%s: not within %s: %s\n%s", what, timeout, why, out)
			}
			time.Sleep(2 * time.Second)
		}
	}
	node := func(name string) *corev1.Node {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return n
	}

	// 1. Both nodes register and become Ready, as their configs say.
	joinStart := time.Now()
	waitFor("both nodes Ready", 8*time.Minute, func() (bool, string) {
		var why []string
		for _, name := range names {
			n := node(name)
			if n == nil {
				why = append(why, name+" not registered")
			} else if !nodeReady(n) {
				why = append(why, name+" not Ready")
			}
		}
		return len(why) == 0, strings.Join(why, ", ")
	})
	rlog("both nodes Ready %s after the VMs started", time.Since(joinStart).Round(time.Second))
	for _, name := range names {
		n := node(name)
		if got, want := n.Status.NodeInfo.OSImage, "keso 1.0.0"; got != want {
			t.Errorf("node %s: osImage %q, want %q", name, got, want)
		}
		if got := n.Status.NodeInfo.ContainerRuntimeVersion; !strings.HasPrefix(got, "containerd://") {
			t.Errorf("node %s: container runtime %q, want containerd", name, got)
		}
		if got, want := ownLabels(n.Labels), fmt.Sprintf("keso.io/fleet=stores,keso.io/site=%s", name); got != want {
			t.Errorf("node %s: labels (outside kubernetes.io) %q, want %q", name, got, want)
		}
		if got, want := taintList(n.Spec.Taints), fmt.Sprintf("keso.io/edge=%s:NoSchedule", name); got != want {
			t.Errorf("node %s: taints %q, want %q", name, got, want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// 2. A workload under a PodDisruptionBudget.
	cp.apply(workload)
	waitFor("the workload's 2 pods Running", 5*time.Minute, func() (bool, string) {
		pods := workloadPods(ctx, kube)
		running := 0
		var why []string
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
			why = append(why, fmt.Sprintf("%s on %s: %s %s", p.Name, p.Spec.NodeName, p.Status.Phase, podWaiting(&p)))
		}
		return running == 2, strings.Join(why, "; ")
	})
	rlog("kubectl get pods -o wide:\n%s", cp.mustKubectl("get", "pods", "-o", "wide"))

	// 3. Roll out v2, staged by day and switched by night: with the
	// maintenance window closed, both nodes stage v2 at once (their stage
	// Jobs fetch, check and write the inactive slot) and report it; no
	// node is cordoned or rebooted. Then the window opens and the nodes
	// switch one at a time, fetching nothing more.
	img2 := "/releases/keso-2.0.0-amd64.squashfs"
	night := time.Now().UTC().Add(6 * time.Hour)
	cp.apply(osVersion("2.0.0", srv.GuestURL, sums["2.0.0"],
		fmt.Sprintf("window: {start: %q, end: %q}", night.Format("15:04"), night.Add(time.Hour).Format("15:04"))))
	stageStart := time.Now()
	waitFor("both nodes staged v2 outside the window", 15*time.Minute, func() (bool, string) {
		osv, err := keso.KesoV1().OSVersions().Get(ctx, "stores", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, name := range names {
			if n := node(name); n != nil && n.Spec.Unschedulable {
				t.Fatalf("node %s was cordoned outside the maintenance window", name)
			}
			if len(nodes[name].exits) != 0 {
				t.Fatalf("node %s rebooted outside the maintenance window", name)
			}
		}
		return osv.Status.Staged == 2, fmt.Sprintf("%s staged %d fetched %q: %s", osv.Status.State, osv.Status.Staged, osv.Status.Fetched, nodeMessages(osv))
	})
	rlog("both nodes staged v2 %s after the OSVersion was applied, outside the window", time.Since(stageStart).Round(time.Second))
	rlog("kubectl get osversion -o wide, staged:\n%s", cp.mustKubectl("get", "osversion", "-o", "wide"))
	osv, _ := keso.KesoV1().OSVersions().Get(ctx, "stores", metav1.GetOptions{})
	fi, err := os.Stat(upgradeImage(t, v2))
	if err != nil {
		t.Fatal(err)
	}
	size2 := fi.Size()
	for _, ns := range osv.Status.Nodes {
		if !ns.Staged || ns.Phase != kesov1.NodePending || ns.Fetched != size2 || ns.Needed != size2 {
			t.Errorf("node %s in the status: %+v; want Pending, staged, %d of %d bytes fetched", ns.Name, ns, size2, size2)
		}
	}
	if osv.Status.State != "Waiting" {
		t.Errorf("state %s while staged outside the window, want Waiting", osv.Status.State)
	}
	for _, name := range names {
		if got := node(name).Annotations["keso.io/staged"]; got != "2.0.0 "+sums["2.0.0"] {
			t.Errorf("node %s: keso.io/staged %q, want \"2.0.0 %s\"", name, got, sums["2.0.0"])
		}
	}
	stagedBytes := srv.sent(img2)
	if t.Failed() {
		t.FailNow()
	}
	open := time.Now().UTC()
	cp.mustKubectl("patch", "osversion", "stores", "--type", "merge", "-p",
		fmt.Sprintf(`{"spec":{"window":{"start":%q,"end":%q}}}`, open.Add(-time.Hour).Format("15:04"), open.Add(3*time.Hour).Format("15:04")))
	timings := map[string]*stepTimes{}
	order := []string{}
	prevPods := workloadPods(ctx, kube)
	waitFor("v2 rolled out to both nodes", 40*time.Minute, func() (bool, string) {
		osv, err := keso.KesoV1().OSVersions().Get(ctx, "stores", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pods := workloadPods(ctx, kube)
		running := 0
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
		}
		if running == 0 {
			t.Fatalf("the PodDisruptionBudget (minAvailable 1) was not honoured: no workload pod running during the rollout (%s)", nodePhases(osv))
		}
		cordoned := 0
		for _, name := range names {
			n := node(name)
			if n == nil {
				continue
			}
			if n.Spec.Unschedulable {
				cordoned++
			}
			st := timings[name]
			if st == nil && n.Spec.Unschedulable {
				st = &stepTimes{cordon: time.Now(), exits: len(nodes[name].exits), before: prevPods}
				timings[name] = st
				order = append(order, name)
			}
			if st != nil {
				st.observe(ctx, t, kube, n, nodes[name], "2.0.0", pods)
			}
		}
		prevPods = pods
		if cordoned > 1 {
			t.Fatalf("concurrency 1, but %d nodes are cordoned at once", cordoned)
		}
		return osv.Status.State == "Complete" && osv.Status.Upgraded == 2, fmt.Sprintf("%s %d/%d %s", osv.Status.State, osv.Status.Upgraded, osv.Status.Total, nodePhases(osv))
	})
	rlog("kubectl get nodes -o wide:\n%s", cp.mustKubectl("get", "nodes", "-o", "wide"))
	rlog("kubectl get osversion -o wide:\n%s", cp.mustKubectl("get", "osversion", "-o", "wide"))
	if got := srv.sent(img2) - stagedBytes; got != 0 {
		t.Errorf("%d bytes of the v2 image were served after the window opened; the switch must fetch nothing (%d while staging)", got, stagedBytes)
	}
	rlog("v2 image bytes served: %d while staging (2 nodes × %d), %d after the window opened", stagedBytes, size2, srv.sent(img2)-stagedBytes)
	rlog("per-node steps of the v2 rollout (drain = cordon to Job created; Job start = Job created to its pod Running; switch = pod Running to the reboot; reboot to Ready = reboot to Ready on 2.0.0; commit = Ready to keso.io/committed=true):")
	for _, name := range order {
		rlog("  %s", timings[name].line(name))
	}
	for _, name := range names {
		st := timings[name]
		if st == nil || st.jobPod == nil {
			t.Fatalf("node %s: no upgrade Job pod seen", name)
		}
		checkJobPod(t, st.jobPod, name)
		if st.evicted == "" && podsOn(st.before, name) > 0 {
			t.Errorf("node %s: its workload pods were not seen evicted and running again on the other node", name)
		}
		n := node(name)
		if got := n.Status.NodeInfo.OSImage; got != "keso 2.0.0" {
			t.Errorf("node %s: osImage %q after the rollout, want keso 2.0.0", name, got)
		}
		if n.Spec.Unschedulable {
			t.Errorf("node %s is still cordoned after the rollout", name)
		}
		if st.uncordon.IsZero() || !st.uncordonCommitted {
			t.Errorf("node %s: uncordoned (counted upgraded) before its Node said keso.io/version=2.0.0, keso.io/committed=true", name)
		}
		c := nodes[name].ssh()
		s := nodes[name].status(c)
		c.Close()
		if s.Upgrade == nil || !s.Upgrade.Committed || s.Upgrade.Trial || s.Version != "2.0.0" || s.Slot != "b" {
			t.Errorf("node %s: keso status after the rollout: version %s slot %s upgrade %+v, want 2.0.0 on slot b, committed", name, s.Version, s.Slot, s.Upgrade)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// 4. A broken v3: the first node tries it, rolls back by itself, and
	// the rollout halts; the second node is never touched.
	before := map[string]int{}
	for _, name := range names {
		before[name] = len(nodes[name].exits)
	}
	cp.apply(osVersion("3.0.0", srv.GuestURL, sums["3.0.0"]))
	var first string
	waitFor("the v3 rollout to halt", 40*time.Minute, func() (bool, string) {
		osv, err := keso.KesoV1().OSVersions().Get(ctx, "stores", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, name := range names {
			if n := node(name); n != nil && n.Spec.Unschedulable && first == "" {
				first = name
			}
		}
		return osv.Status.State == "Halted", fmt.Sprintf("%s %d/%d %s", osv.Status.State, osv.Status.Upgraded, osv.Status.Total, nodePhases(osv))
	})
	osv, _ = keso.KesoV1().OSVersions().Get(ctx, "stores", metav1.GetOptions{})
	rlog("kubectl get osversion -o wide:\n%s", cp.mustKubectl("get", "osversion", "-o", "wide"))
	events := cp.mustKubectl("get", "events", "-A", "--field-selector", "involvedObject.kind=OSVersion", "--sort-by=.lastTimestamp")
	rlog("the operator's events:\n%s", events)
	if first == "" {
		t.Fatal("no node was ever cordoned for v3")
	}
	second := names[0]
	if second == first {
		second = names[1]
	}
	var failed *kesov1.NodeStatus
	for i := range osv.Status.Nodes {
		if osv.Status.Nodes[i].Name == first {
			failed = &osv.Status.Nodes[i]
		}
	}
	if failed == nil || failed.Phase != kesov1.NodeFailed || failed.Message == "" {
		t.Errorf("status of %s after the halt: %+v, want phase Failed with the reason", first, failed)
	}
	if !strings.Contains(events, first) {
		t.Errorf("no event of the operator names %s", first)
	}
	// Nothing loops: for a while nothing more happens.
	quiet := time.Now().Add(90 * time.Second)
	waitFor("a quiet minute and a half after the halt", 3*time.Minute, func() (bool, string) {
		if n := node(second); n != nil && n.Spec.Unschedulable {
			t.Fatalf("node %s was cordoned after the rollout halted", second)
		}
		return time.Now().After(quiet), "watching"
	})
	if got := len(nodes[second].exits) - before[second]; got != 0 {
		t.Errorf("node %s rebooted %d times during the v3 rollout, want never", second, got)
	}
	// Upgrade Jobs only: both nodes staged v3 (harmless), one switched.
	jobs, _ := kube.BatchV1().Jobs("keso-system").List(ctx, metav1.ListOptions{LabelSelector: "!keso.io/upgrade-step"})
	v3jobs := 0
	for _, j := range jobs.Items {
		for _, c := range j.Spec.Template.Spec.Containers {
			if strings.Contains(strings.Join(c.Command, " "), "3.0.0") {
				v3jobs++
				if !strings.Contains(j.Name, first) {
					t.Errorf("a v3 Job %s exists for another node than %s", j.Name, first)
				}
			}
		}
	}
	if v3jobs != 1 {
		t.Errorf("%d upgrade Jobs for v3, want exactly 1 (no loop)", v3jobs)
	}
	n := node(first)
	if got := n.Status.NodeInfo.OSImage; got != "keso 2.0.0" {
		t.Errorf("node %s after the rollback: osImage %q, want keso 2.0.0", first, got)
	}
	c := nodes[first].ssh()
	s := nodes[first].status(c)
	c.Close()
	if s.Version != "2.0.0" || s.Upgrade == nil || s.Upgrade.LastRollback == nil {
		t.Errorf("node %s: keso status after v3: version %s, upgrade %+v; want 2.0.0 with the rollback recorded", first, s.Version, s.Upgrade)
	} else {
		rlog("node %s recorded: %s → %s: %s", first, s.Upgrade.LastRollback.FromVersion, s.Upgrade.LastRollback.ToVersion, s.Upgrade.LastRollback.Reason)
	}
}

// podLogs is what the node's kubelet logged of the operator's pods (the
// API server cannot reach the kubelets behind QEMU's user network, so no
// kubectl logs), for failure messages.
func (n *rnNode) podLogs() string {
	c, err := dialOnce(n.port, n.signer)
	if err != nil {
		return fmt.Sprintf("\n%s: no SSH for pod logs: %v\n", n.name, err)
	}
	defer c.Close()
	out, _ := guestRun(c, "for f in /var/log/pods/keso-system_*/*/*.log; do echo \"== $f\"; cat $f; done; echo '== keso status'; keso status")
	return fmt.Sprintf("\n--- %s: pod logs of keso-system\n%s", n.name, out)
}

// stepTimes are the moments one node's upgrade passed its steps.
type stepTimes struct {
	cordon, job, podRunning, reboot, ready, commit, uncordon time.Time
	exits                                                    int
	jobPod                                                   *corev1.Pod
	evicted                                                  string
	before                                                   []corev1.Pod // workload pods just before the cordon
	uncordonCommitted                                        bool         // the Node that was uncordoned said committed
}

// observe notes which steps node n has passed; pods are the workload's
// pods now.
func (s *stepTimes) observe(ctx context.Context, t testing.TB, kube kubernetes.Interface, n *corev1.Node, rn *rnNode, target string, pods []corev1.Pod) {
	now := time.Now()
	if s.evicted == "" {
		// A pod that was on n before the cordon is gone, and a pod that
		// did not exist then runs on another node.
		cur := map[string]corev1.Pod{}
		for _, p := range pods {
			cur[p.Name] = p
		}
		old := map[string]bool{}
		gone := ""
		for _, p := range s.before {
			old[p.Name] = true
			if q, ok := cur[p.Name]; p.Spec.NodeName == n.Name && (!ok || q.DeletionTimestamp != nil) {
				gone = p.Name
			}
		}
		for _, p := range pods {
			if gone != "" && !old[p.Name] && p.Spec.NodeName != "" && p.Spec.NodeName != n.Name && p.Status.Phase == corev1.PodRunning {
				s.evicted = fmt.Sprintf("%s evicted, %s running on %s", gone, p.Name, p.Spec.NodeName)
			}
		}
	}
	if s.jobPod == nil || s.podRunning.IsZero() {
		pods, _ := kube.CoreV1().Pods("keso-system").List(ctx, metav1.ListOptions{})
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Spec.NodeName != n.Name || !p.CreationTimestamp.Time.After(s.cordon.Add(-time.Second)) {
				continue
			}
			s.jobPod = p.DeepCopy()
			if s.job.IsZero() {
				s.job = p.CreationTimestamp.Time
			}
			if s.podRunning.IsZero() && (p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodSucceeded) {
				s.podRunning = now
			}
		}
	}
	if s.reboot.IsZero() && len(rn.exits) > s.exits {
		s.reboot = rn.exits[s.exits]
	}
	if !s.reboot.IsZero() && s.ready.IsZero() && nodeReady(n) && n.Status.NodeInfo.OSImage == "keso "+target {
		s.ready = now
	}
	if !s.ready.IsZero() && s.commit.IsZero() && n.Annotations[annVersion] == target && n.Annotations[annCommitted] == "true" {
		s.commit = now
	}
	if !s.reboot.IsZero() && s.uncordon.IsZero() && !n.Spec.Unschedulable {
		s.uncordon = now
		s.uncordonCommitted = n.Annotations[annVersion] == target && n.Annotations[annCommitted] == "true"
	}
}

func (s *stepTimes) line(name string) string {
	d := func(a, b time.Time) string {
		if a.IsZero() || b.IsZero() {
			return "?"
		}
		return b.Sub(a).Round(100 * time.Millisecond).String()
	}
	return fmt.Sprintf("%s: drain %s, Job start %s, switch %s, reboot to Ready %s, commit %s, uncordon %s; %s",
		name, d(s.cordon, s.job), d(s.job, s.podRunning), d(s.podRunning, s.reboot), d(s.reboot, s.ready), d(s.ready, s.commit), d(s.commit, s.uncordon), s.evicted)
}

// checkJobPod checks that the pod the kubelet ran is the operator's Job
// as the operator writes it: privileged, in the host's PID namespace, with
// its hostPath mounts, run by containerd on that node.
func checkJobPod(t testing.TB, p *corev1.Pod, node string) {
	t.Helper()
	if p.Spec.NodeName != node || !p.Spec.HostPID {
		t.Errorf("Job pod %s: node %s hostPID %v, want node %s, hostPID", p.Name, p.Spec.NodeName, p.Spec.HostPID, node)
	}
	if len(p.Spec.Containers) != 1 || p.Spec.Containers[0].SecurityContext == nil || p.Spec.Containers[0].SecurityContext.Privileged == nil || !*p.Spec.Containers[0].SecurityContext.Privileged {
		t.Errorf("Job pod %s is not privileged", p.Name)
	}
	hp := 0
	for _, v := range p.Spec.Volumes {
		if v.HostPath != nil {
			hp++
		}
	}
	if hp == 0 {
		t.Errorf("Job pod %s has no hostPath volumes", p.Name)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !strings.HasPrefix(cs.ContainerID, "containerd://") {
			t.Errorf("Job pod %s: container %s ID %q, want one from containerd", p.Name, cs.Name, cs.ContainerID)
		}
	}
}

func podsOn(pods []corev1.Pod, node string) int {
	n := 0
	for _, p := range pods {
		if p.Spec.NodeName == node {
			n++
		}
	}
	return n
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ownLabels lists a node's labels outside the kubernetes.io and k8s.io
// domains (which the kubelet sets itself), sorted.
func ownLabels(l map[string]string) string {
	var out []string
	for k, v := range l {
		if strings.Contains(k, "kubernetes.io/") || strings.Contains(k, "k8s.io/") {
			continue
		}
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// taintList lists a node's taints but the node lifecycle controller's
// own (node.kubernetes.io/not-ready and the like, which come and go).
func taintList(ts []corev1.Taint) string {
	var out []string
	for _, t := range ts {
		if strings.HasPrefix(t.Key, "node.kubernetes.io/") {
			continue
		}
		out = append(out, fmt.Sprintf("%s=%s:%s", t.Key, t.Value, t.Effect))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func nodePhases(osv *kesov1.OSVersion) string {
	var out []string
	for _, n := range osv.Status.Nodes {
		s := n.Name + ":" + string(n.Phase)
		if n.Message != "" {
			s += "(" + n.Message + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func podWaiting(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Waiting != nil {
			return cs.State.Waiting.Reason + ": " + cs.State.Waiting.Message
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			return c.Message
		}
	}
	return ""
}

func workloadPods(ctx context.Context, kube kubernetes.Interface) []corev1.Pod {
	pods, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=shop"})
	if err != nil {
		return nil
	}
	return pods.Items
}

// workload is two pause pods that tolerate the stores' taints, spread
// over the nodes when they can be, and a budget that keeps one running.
const workload = `apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      tolerations: [{key: keso.io/edge, operator: Exists}]
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: shop}}}
      terminationGracePeriodSeconds: 5
      containers:
      - {name: till, image: "registry.k8s.io/pause:3.10", imagePullPolicy: Never}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: shop, namespace: default}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: shop}}
`

// osVersion is the OSVersion "stores" for version; extra are more lines
// of its spec.
func osVersion(version, base, sum string, extra ...string) string {
	return fmt.Sprintf(`apiVersion: keso.io/v1
kind: OSVersion
metadata: {name: stores}
spec:
  version: "%s"
  image: %s/releases/keso-{version}-{arch}.squashfs
  sha256: {amd64: "%s"}
  nodeSelector: {matchLabels: {keso.io/fleet: stores}}
  concurrency: 1
  drain: {timeout: 5m}
  upgradeTimeout: 25m
  `, version, base, sum) + strings.Join(extra, "\n  ") + "\n"
}

// nodeMessages lists each node's phase and message in the status.
func nodeMessages(osv *kesov1.OSVersion) string {
	var out []string
	for _, n := range osv.Status.Nodes {
		out = append(out, fmt.Sprintf("%s=%s (%s)", n.Name, n.Phase, n.Message))
	}
	return strings.Join(out, ", ")
}

// startOperator installs the CRD and the operator's RBAC from the shipped
// manifests (all but its Deployment) and runs `keso operator` on the host.
func startOperator(t testing.TB, cp *controlPlane) {
	t.Helper()
	dir := filepath.Join(repoRoot(), "overlay/usr/share/keso/manifests")
	crd, err := os.ReadFile(filepath.Join(dir, "osversion-crd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cp.apply(string(crd))
	cp.mustKubectl("wait", "--for=condition=Established", "crd/osversions.keso.io", "--timeout=60s")
	man, err := os.ReadFile(filepath.Join(dir, "keso-operator.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, d := range strings.Split(string(man), "\n---") {
		if !strings.Contains(d, "\nkind: Deployment") {
			docs = append(docs, d)
		}
	}
	cp.apply(strings.Join(docs, "\n---"))
	bin := filepath.Join(t.TempDir(), "keso")
	gb := exec.Command("go", "build", "-o", bin, "./cmd/keso")
	gb.Dir = repoRoot()
	if b, err := gb.CombinedOutput(); err != nil {
		t.Fatalf("build keso: %v\n%s", err, b)
	}
	lf, err := os.Create(filepath.Join(logDir(t), "operator.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "operator", "--kubeconfig", cp.Kubeconfig, "--namespace", "keso-system", "--metrics-addr", "", "--resync", "5s")
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		lf.Close()
	})
}

// dialOnce logs in as root once, without failing the test.
func dialOnce(port int, signer ssh.Signer) (*ssh.Client, error) {
	cfg := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 20 * time.Second,
		HostKeyCallback: ssh.InsecureIgnoreHostKey()}
	return ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
}
