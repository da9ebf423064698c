package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
	"github.com/keso-os/keso/pkg/operator"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

const testLabel = "keso-test"

// behaviour is what a simulated node does with its upgrade Job.
type behaviour string

const (
	upgradeOK behaviour = "ok"       // reboots into the target version, its trial commits
	rollBack  behaviour = "rollback" // reboots, but comes back on the old version
	jobFails  behaviour = "fail"     // the Job fails before rebooting
	hang      behaviour = "hang"     // never comes back
	// rollBackAfterSuccess upgrades and commits like upgradeOK, then, once
	// the operator has counted the node Upgraded, reboots back into the old
	// version (a fallback after a "success").
	rollBackAfterSuccess behaviour = "rollback-after-success"
)

// sim plays the kubelet for the nodes labelled keso-test=<group>: it runs
// their upgrade Jobs and finishes their evicted pods. It also watches the
// nodes and records the most that were cordoned at any one moment.
type sim struct {
	t      *testing.T
	group  string
	delay  time.Duration
	behave func(node string, attempt int) behaviour

	mu          sync.Mutex
	jobs        map[string]int // Jobs seen per node
	flips       map[string]int // reboots into the target version per node
	order       []string       // nodes in the order their first Job appeared
	cordoned    map[string]bool
	maxCordoned int
	stop        context.CancelFunc
	// admitPods makes the simulator act like the Job controller before it
	// runs a Job: it asks the API server to admit the Job's pod (a dry-run
	// create, which PodSecurity admission evaluates like a real one); a
	// refused pod leaves the Job without pods, as in a real cluster.
	admitPods bool
	refused   map[string]string // Job name → the API server's refusal
	// stages are the stage Jobs run, per node, in order: "<target>
	// staged at <time>"; the first upgrade Job of each node is recorded in
	// firstJob.
	stages   map[string][]stageRun
	firstJob map[string]time.Time
}

// stageRun is one stage Job the simulator ran.
type stageRun struct {
	Target string
	Done   time.Time
}

func newSim(t *testing.T, group string, delay time.Duration, behave func(string, int) behaviour) *sim {
	s := &sim{t: t, group: group, delay: delay, behave: behave,
		jobs: map[string]int{}, flips: map[string]int{}, cordoned: map[string]bool{}, refused: map[string]string{},
		stages: map[string][]stageRun{}, firstJob: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	t.Cleanup(cancel)

	nodeF := informers.NewSharedInformerFactoryWithOptions(kube, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = testLabel + "=" + group }))
	nodeF.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.sawNode(obj.(*corev1.Node)) },
		UpdateFunc: func(_, obj any) { s.sawNode(obj.(*corev1.Node)) },
	})
	jobF := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(jobNamespace))
	jobF.Batch().V1().Jobs().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { s.sawJob(ctx, obj.(*batchv1.Job)) },
	})
	podF := informers.NewSharedInformerFactory(kube, 0)
	podF.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) {
			p := obj.(*corev1.Pod)
			if p.DeletionTimestamp != nil && strings.HasPrefix(p.Spec.NodeName, group+"-") {
				_ = kube.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
			}
		},
	})
	for _, f := range []informers.SharedInformerFactory{nodeF, jobF, podF} {
		f.Start(ctx.Done())
		f.WaitForCacheSync(ctx.Done())
	}
	return s
}

func (s *sim) sawNode(n *corev1.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cordoned[n.Name] = n.Spec.Unschedulable
	c := 0
	for _, v := range s.cordoned {
		if v {
			c++
		}
	}
	s.maxCordoned = max(s.maxCordoned, c)
}

func (s *sim) sawJob(ctx context.Context, j *batchv1.Job) {
	node := j.Labels[operator.JobLabel]
	if !strings.HasPrefix(node, s.group+"-") || j.DeletionTimestamp != nil {
		return
	}
	target := j.Labels[operator.TargetLabel]
	if j.Labels[operator.StepLabel] == "stage" {
		go s.stage(ctx, j, node, target)
		return
	}
	s.mu.Lock()
	s.jobs[node]++
	attempt := s.jobs[node]
	if attempt == 1 {
		s.order = append(s.order, node)
		s.firstJob[node] = time.Now()
	}
	s.mu.Unlock()
	b := s.behave(node, attempt)
	go func() {
		if !s.admit(ctx, j) {
			return
		}
		if err := startJob(ctx, j); err != nil && ctx.Err() == nil {
			s.t.Errorf("simulator: start Job %s: %v", j.Name, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.delay):
		}
		old, err := nodeVersion(ctx, node)
		if err != nil {
			s.t.Errorf("simulator: node %s: %v", node, err)
			return
		}
		switch b {
		case upgradeOK, rollBackAfterSuccess:
			err = s.upgrade(ctx, node, target)
			if err == nil {
				err = finishJob(ctx, j, true)
			}
			if err == nil && b == rollBackAfterSuccess {
				// Wait until the operator counted it, then fall back:
				// the kubelet reports the old osImage first, the node's
				// own report (with keso.io/rollback) follows in a write
				// of its own, as on a real node where either may come
				// first.
				err = waitClaimPhase(ctx, node, kesov1.NodeUpgraded)
				if err == nil {
					err = setNode(ctx, node, "keso "+old, true)
				}
				if err == nil {
					err = annotate(ctx, node, old, "true", target+" -> "+old+": simulated fallback after commit")
				}
			}
		case rollBack:
			// Back on the old version: the kubelet's report first, then
			// the node's own (see above).
			err = setNode(ctx, node, "", true)
			if err == nil {
				err = annotate(ctx, node, old, "true", target+" -> "+old+": simulated failed trial")
			}
			if err == nil {
				err = finishJob(ctx, j, true)
			}
		case jobFails:
			err = finishJob(ctx, j, false)
		}
		if err != nil && ctx.Err() == nil {
			s.t.Errorf("simulator: node %s (%s): %v", node, b, err)
		}
	}()
}

// admit is the Job controller creating the Job's pod: with admitPods, a
// dry-run create that admission (PodSecurity) evaluates like a real one;
// a refused pod leaves the Job without pods, as in a real cluster.
func (s *sim) admit(ctx context.Context, j *batchv1.Job) bool {
	if !s.admitPods {
		return true
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-sim", Namespace: j.Namespace, Labels: j.Spec.Template.Labels},
		Spec: j.Spec.Template.Spec}
	if _, err := kube.CoreV1().Pods(j.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		s.mu.Lock()
		s.refused[j.Name] = err.Error()
		s.mu.Unlock()
		return false
	}
	return true
}

// stage runs a stage Job the way a keso node does: the node reports its
// download's progress, then the staged image, and the Job succeeds.
func (s *sim) stage(ctx context.Context, j *batchv1.Job, node, target string) {
	cmd := j.Spec.Template.Spec.Containers[0].Command
	sha := ""
	for i := range cmd[:len(cmd)-1] {
		if cmd[i] == "--sha256" {
			sha = cmd[i+1]
		}
	}
	if !s.admit(ctx, j) {
		return
	}
	err := startJob(ctx, j)
	for _, fetched := range []int{1 << 20, 4 << 20} {
		if err != nil {
			break
		}
		time.Sleep(s.delay / 2)
		err = setAnnotations(ctx, node, map[string]string{operator.StageProgressAnnotation: fmt.Sprintf("%s %d/%d", sha, fetched, 4<<20)})
	}
	if err == nil {
		err = setAnnotations(ctx, node, map[string]string{operator.StagedAnnotation: target + " " + sha})
	}
	if err == nil {
		s.mu.Lock()
		s.stages[node] = append(s.stages[node], stageRun{Target: target, Done: time.Now()})
		s.mu.Unlock()
		err = finishJob(ctx, j, true)
	}
	if err != nil && ctx.Err() == nil {
		s.t.Errorf("simulator: stage Job %s: %v", j.Name, err)
	}
}

// staged returns the stage Jobs run and each node's first upgrade Job.
func (s *sim) staged() (map[string][]stageRun, map[string]time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stages, first := map[string][]stageRun{}, map[string]time.Time{}
	for k, v := range s.stages {
		stages[k] = append([]stageRun(nil), v...)
	}
	for k, v := range s.firstJob {
		first[k] = v
	}
	return stages, first
}

// upgrade reboots the node into target the way a keso node does: the
// kubelet reports the new osImage and Ready while the node's own report
// still comes from the previous boot; then the agent reports the trial
// (committed=false); then the health gate commits (committed=true).
func (s *sim) upgrade(ctx context.Context, node, target string) error {
	if err := setNode(ctx, node, "keso "+target, true); err != nil {
		return err
	}
	s.mu.Lock()
	s.flips[node]++
	s.mu.Unlock()
	for _, committed := range []string{"false", "true"} {
		time.Sleep(s.delay / 3)
		if err := annotate(ctx, node, target, committed, ""); err != nil {
			return err
		}
	}
	// The switch armed the staged slot: nothing is staged any more.
	return setAnnotations(ctx, node, map[string]string{operator.StagedAnnotation: ""})
}

// setAnnotations sets annotations on a node; an empty value removes one.
func setAnnotations(ctx context.Context, name string, set map[string]string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		for k, v := range set {
			if v == "" {
				delete(n.Annotations, k)
			} else {
				n.Annotations[k] = v
			}
		}
		_, err = kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

func (s *sim) refusals() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, v := range s.refused {
		out[k] = v
	}
	return out
}

func (s *sim) snapshot() (jobs, flips map[string]int, order []string, maxCordoned int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	jobs, flips = map[string]int{}, map[string]int{}
	for k, v := range s.jobs {
		jobs[k] = v
	}
	for k, v := range s.flips {
		flips[k] = v
	}
	return jobs, flips, append([]string(nil), s.order...), s.maxCordoned
}

// annotate writes what a keso node reports about itself (pkg/operator's
// VersionAnnotation, CommittedAnnotation, RollbackAnnotation).
func annotate(ctx context.Context, name, version, committed, rollback string) error {
	set := map[string]string{operator.VersionAnnotation: version, operator.CommittedAnnotation: committed}
	if rollback != "" {
		set[operator.RollbackAnnotation] = rollback
	}
	return setAnnotations(ctx, name, set)
}

func nodeVersion(ctx context.Context, name string) (string, error) {
	n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return operator.VersionFromOSImage(n.Status.NodeInfo.OSImage), nil
}

// waitClaimPhase waits until the operator's claim on the node has phase.
func waitClaimPhase(ctx context.Context, name string, phase kesov1.NodePhase) error {
	for {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c, _ := operator.ParseClaim(n.Annotations); c != nil && c.Phase == phase {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startJob marks the Job's pod active, as the Job controller does once it
// created it.
func startJob(ctx context.Context, j *batchv1.Job) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := kube.BatchV1().Jobs(j.Namespace).Get(ctx, j.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Status.StartTime == nil {
			// Immutable once set on an unsuspended Job.
			now := metav1.Now()
			cur.Status.StartTime = &now
		}
		cur.Status.Active = 1
		_, err = kube.BatchV1().Jobs(j.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// setNode reboots a simulated node: a new boot ID, Ready, and osImage
// (unchanged when osImage is "").
func setNode(ctx context.Context, name, osImage string, ready bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if osImage != "" {
			n.Status.NodeInfo.OSImage = osImage
		}
		n.Status.NodeInfo.BootID = string(uuid.NewUUID())
		n.Status.Conditions = readyCondition(ready)
		_, err = kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

func readyCondition(ready bool) []corev1.NodeCondition {
	s := corev1.ConditionFalse
	if ready {
		s = corev1.ConditionTrue
	}
	now := metav1.Now()
	return []corev1.NodeCondition{{Type: corev1.NodeReady, Status: s, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}}
}

// finishJob sets a Job's status the way the Job controller would.
func finishJob(ctx context.Context, j *batchv1.Job, ok bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := kube.BatchV1().Jobs(j.Namespace).Get(ctx, j.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		if cur.Status.StartTime == nil {
			// Immutable once set on an unsuspended Job.
			start := metav1.NewTime(now.Add(-time.Second))
			cur.Status.StartTime = &start
		}
		cur.Status.Active = 0
		cond := func(t batchv1.JobConditionType, reason string) batchv1.JobCondition {
			return batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: "simulated", LastProbeTime: now, LastTransitionTime: now}
		}
		if ok {
			cur.Status.Succeeded = 1
			cur.Status.CompletionTime = &now
			cur.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet, "CompletionsReached"), cond(batchv1.JobComplete, "CompletionsReached")}
		} else {
			cur.Status.Failed = 1
			cur.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobFailureTarget, "BackoffLimitExceeded"), cond(batchv1.JobFailed, "BackoffLimitExceeded")}
		}
		_, err = kube.BatchV1().Jobs(j.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// makeNodes creates n nodes <group>-NNN running keso <version> committed,
// Ready, amd64.
func makeNodes(t *testing.T, group string, n int, version string) []string {
	t.Helper()
	archs := make([]string, n)
	for i := range archs {
		archs[i] = "amd64"
	}
	return makeArchNodes(t, group, version, archs)
}

// makeArchNodes creates one node per entry of archs (Kubernetes arch names:
// amd64, arm64, arm), like makeNodes.
func makeArchNodes(t *testing.T, group, version string, archs []string) []string {
	t.Helper()
	ctx := context.Background()
	var names []string
	for i, arch := range archs {
		name := fmt.Sprintf("%s-%03d", group, i)
		node, err := kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: name, Labels: map[string]string{testLabel: group, "kubernetes.io/arch": arch},
			Annotations: map[string]string{operator.VersionAnnotation: version, operator.CommittedAnnotation: "true", operator.SlotAnnotation: "a"},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		node.Status.NodeInfo = corev1.NodeSystemInfo{OSImage: "keso " + version, Architecture: arch, BootID: string(uuid.NewUUID()),
			KubeletVersion: "v1.37.2+k3s1", OperatingSystem: "linux"}
		node.Status.Conditions = readyCondition(true)
		if _, err := kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	t.Cleanup(func() {
		_ = kube.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: testLabel + "=" + group})
	})
	return names
}

const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// makeOSVersion creates an OSVersion selecting group's nodes.
func makeOSVersion(t *testing.T, group, version string, mod func(*kesov1.OSVersionSpec)) *kesov1.OSVersion {
	t.Helper()
	o := &kesov1.OSVersion{
		ObjectMeta: metav1.ObjectMeta{Name: group},
		Spec: kesov1.OSVersionSpec{
			Version:      version,
			Image:        "https://releases.example.org/keso-{version}-{arch}.squashfs",
			SHA256:       map[string]kesov1.SHA256Sum{"amd64": sum},
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{testLabel: group}},
		},
	}
	if mod != nil {
		mod(&o.Spec)
	}
	ctx := context.Background()
	got, err := keso.KesoV1().OSVersions().Create(ctx, o, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = keso.KesoV1().OSVersions().Delete(ctx, group, metav1.DeleteOptions{})
		// Background: the default for Jobs (orphan) leaves a finalizer
		// that only a garbage collector removes, and there is none here;
		// the Job would stay for the next test with the same group
		// (go test -count).
		bg := metav1.DeletePropagationBackground
		_ = kube.BatchV1().Jobs(jobNamespace).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &bg}, metav1.ListOptions{LabelSelector: operator.OSVersionLabel + "=" + group})
	})
	return got
}

func getOSV(t *testing.T, name string) *kesov1.OSVersion {
	t.Helper()
	o, err := keso.KesoV1().OSVersions().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func condition(o *kesov1.OSVersion, typ string) metav1.Condition {
	for _, c := range o.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

// waitState waits for status.state == state.
func waitState(t *testing.T, name, state string, timeout time.Duration) *kesov1.OSVersion {
	t.Helper()
	var o *kesov1.OSVersion
	eventually(t, timeout, "OSVersion "+name+" state "+state, func() (bool, error) {
		var err error
		o, err = keso.KesoV1().OSVersions().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return o.Status.State == state, fmt.Errorf("state %q, %d/%d upgraded", o.Status.State, o.Status.Upgraded, o.Status.Total)
	})
	return o
}
