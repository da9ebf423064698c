package operator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
	kesoctl "github.com/keso-os/keso/pkg/generated/controllers/keso.io/v1"
	batchctl "github.com/rancher/wrangler/v3/pkg/generated/controllers/batch/v1"
	corectl "github.com/rancher/wrangler/v3/pkg/generated/controllers/core/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// Reconciler holds the operator's clients and caches. Its handlers never
// modify cached objects: they copy before writing.
type Reconciler struct {
	OSVersions kesoctl.OSVersionController
	Nodes      corectl.NodeController
	Jobs       batchctl.JobController
	Kube       kubernetes.Interface
	Recorder   record.EventRecorder
	Metrics    *Metrics
	Job        JobConfig
	Resync     time.Duration    // requeue interval while nodes are in flight
	Now        func() time.Time // clock; time.Now in production
	Log        func(format string, args ...any)
}

// Register wires the handlers: OSVersion changes reconcile the OSVersion;
// node and Job changes enqueue the OSVersions they concern.
func (r *Reconciler) Register(ctx context.Context) {
	r.OSVersions.OnChange(ctx, "keso-osversion", r.sync)
	r.Nodes.OnChange(ctx, "keso-osversion-nodes", func(_ string, n *corev1.Node) (*corev1.Node, error) {
		if n == nil {
			return nil, nil
		}
		list, err := r.OSVersions.Cache().List(labels.Everything())
		if err != nil {
			return n, err
		}
		for _, o := range list {
			r.OSVersions.Enqueue(o.Name)
		}
		return n, nil
	})
	r.Jobs.OnChange(ctx, "keso-osversion-jobs", func(_ string, j *batchv1.Job) (*batchv1.Job, error) {
		if j != nil && j.Labels[OSVersionLabel] != "" {
			r.OSVersions.Enqueue(j.Labels[OSVersionLabel])
		}
		return j, nil
	})
}

func nodeOf(n *corev1.Node) Node {
	out := Node{
		Name:          n.Name,
		Labels:        n.Labels,
		Version:       VersionFromOSImage(n.Status.NodeInfo.OSImage),
		Arch:          n.Status.NodeInfo.Architecture,
		Unschedulable: n.Spec.Unschedulable,
		BootID:        n.Status.NodeInfo.BootID,
		Reported:      n.Annotations[VersionAnnotation],
		Committed:     n.Annotations[CommittedAnnotation] == "true",
		RollbackNote:  n.Annotations[RollbackAnnotation],
		Staged:        parseStaged(n.Annotations[StagedAnnotation]),
	}
	out.Progress.SHA256, out.Progress.Fetched, out.Progress.Needed = parseStageProgress(n.Annotations[StageProgressAnnotation])
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Ready = c.Status == corev1.ConditionTrue
		}
	}
	out.Claim, out.ClaimErr = ParseClaim(n.Annotations)
	return out
}

// DecideNodes is Decide over API objects: what one reconcile pass computes
// before it acts (node views with parsed claims, selection, status).
func DecideNodes(osv *kesov1.OSVersion, nodes []*corev1.Node, now time.Time) Plan {
	views := make([]Node, 0, len(nodes))
	for _, n := range nodes {
		views = append(views, nodeOf(n))
	}
	return Decide(rolloutOf(osv), views, now)
}

func rolloutOf(o *kesov1.OSVersion) Rollout {
	return Rollout{Name: o.Name, Generation: o.Generation, Spec: o.Spec, Resume: o.Annotations[ResumeAnnotation]}
}

// sync is the level-triggered reconcile of one OSVersion: advance every
// in-flight node one step, start new nodes when the plan allows, write the
// status.
func (r *Reconciler) sync(_ string, osv *kesov1.OSVersion) (*kesov1.OSVersion, error) {
	if osv == nil || osv.DeletionTimestamp != nil {
		return osv, nil
	}
	now := r.Now()
	cached, err := r.Nodes.Cache().List(labels.Everything())
	if err != nil {
		return osv, fmt.Errorf("list nodes: %w", err)
	}
	byName := map[string]*corev1.Node{}
	for _, n := range cached {
		byName[n.Name] = n
	}
	rollout := rolloutOf(osv)
	plan := Decide(rollout, r.views(osv, cached), now)

	failed := plan.Halted != nil
	var errs []error
	for _, h := range plan.Regressed {
		if err := r.regressed(osv, rollout, byName[h.Node], h.Reason, now); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range plan.InFlight {
		f, err := r.advance(osv, byName[name], now)
		failed = failed || f
		if err != nil {
			errs = append(errs, err)
		}
	}
	if !failed && len(errs) == 0 && len(plan.Start) > 0 {
		if err := r.start(osv, rollout, now); err != nil {
			errs = append(errs, err)
		}
	}
	if err := r.stage(osv, plan, byName); err != nil {
		errs = append(errs, err)
	}
	if err := r.writeStatus(osv, plan); err != nil {
		errs = append(errs, err)
	}
	r.observe(osv.Name, plan.Status)
	switch {
	case len(plan.InFlight)+len(plan.Start)+len(plan.Stage)+len(plan.Staging) > 0:
		r.OSVersions.EnqueueAfter(osv.Name, r.Resync)
	case !plan.NextWindow.IsZero():
		r.OSVersions.EnqueueAfter(osv.Name, plan.NextWindow.Sub(now)+time.Second)
	}
	err = errors.Join(errs...)
	if err != nil {
		r.Log("osversion %s: %v (retrying)", osv.Name, err)
	}
	return osv, err
}

// start claims the nodes the plan says to start. It decides again on a
// fresh, uncached list of nodes, so a stale cache can never make it exceed
// the concurrency; each claim is an optimistic-concurrency update of the
// node (annotation + cordon in one write), so two writers never both win.
func (r *Reconciler) start(osv *kesov1.OSVersion, rollout Rollout, now time.Time) error {
	live, err := r.Nodes.List(metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	byName := map[string]*corev1.Node{}
	list := make([]*corev1.Node, 0, len(live.Items))
	for i := range live.Items {
		n := &live.Items[i]
		byName[n.Name] = n
		list = append(list, n)
	}
	plan := Decide(rollout, r.views(osv, list), now)
	if plan.Halted != nil {
		return nil
	}
	for _, name := range plan.Start {
		n := byName[name].DeepCopy()
		info := nodeOf(n)
		c := Claim{
			OSVersion: osv.Name, Target: osv.Spec.Version, From: info.Version,
			Phase: kesov1.NodeDraining, Since: now, Started: now, BootID: info.BootID,
			Cordoned: !n.Spec.Unschedulable, Generation: osv.Generation, Resume: rollout.Resume,
		}
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		n.Annotations[ClaimAnnotation] = c.Encode()
		n.Spec.Unschedulable = true
		if _, err := r.Nodes.Update(n); err != nil {
			return fmt.Errorf("claim node %s: %w", name, err)
		}
		r.Log("osversion %s: node %s: started upgrade %s → %s", osv.Name, name, info.Version, osv.Spec.Version)
		r.Recorder.Eventf(n, corev1.EventTypeNormal, "UpgradeStarted", "OSVersion %s: cordoned, upgrading %s → %s", osv.Name, info.Version, osv.Spec.Version)
	}
	return nil
}

// views are the planner's views of nodes for osv, each with its stage
// Job for osv's target as the Job cache has it.
func (r *Reconciler) views(osv *kesov1.OSVersion, nodes []*corev1.Node) []Node {
	out := make([]Node, 0, len(nodes))
	for _, n := range nodes {
		v := nodeOf(n)
		name := StageJobName(v.Name, osv.Spec, KesoArch(v.Arch))
		if j, err := r.Jobs.Cache().Get(r.Job.Namespace, name); err == nil {
			v.StageJob = JobStateOf(j)
		}
		out = append(out, v)
	}
	return out
}

// stage creates the stage Jobs the plan asks for, and deletes this
// rollout's stage Jobs that still run for another target (the spec
// changed while they ran): one keso upgrade at a time runs on a node.
func (r *Reconciler) stage(osv *kesov1.OSVersion, plan Plan, byName map[string]*corev1.Node) error {
	var errs []error
	jobs, err := r.Jobs.Cache().List(r.Job.Namespace, labels.SelectorFromSet(labels.Set{OSVersionLabel: osv.Name, StepLabel: "stage"}))
	if err != nil {
		return fmt.Errorf("list stage Jobs of OSVersion %s: %w", osv.Name, err)
	}
	for _, j := range staleStageJobs(osv.Spec, jobs, byName) {
		if err := r.deleteJob(j.Name); err != nil {
			errs = append(errs, fmt.Errorf("delete stale stage Job %s/%s: %w", j.Namespace, j.Name, err))
			continue
		}
		r.Log("osversion %s: node %s: deleted stage Job %s of target %s (the target is now %s)", osv.Name, j.Labels[JobLabel], j.Name, j.Labels[TargetLabel], osv.Spec.Version)
	}
	for _, name := range plan.Stage {
		node := byName[name]
		j := StageJob(osv, nodeOf(node), r.Job)
		if _, err := r.createJob(j); apierrors.IsAlreadyExists(err) {
			continue // made in an earlier pass the cache had not seen yet
		} else if err != nil {
			errs = append(errs, fmt.Errorf("create stage Job %s/%s for node %s: %w", j.Namespace, j.Name, name, err))
			continue
		}
		r.Log("osversion %s: node %s: staging %s (Job %s)", osv.Name, name, osv.Spec.Version, j.Name)
		r.Recorder.Eventf(node, corev1.EventTypeNormal, "StageStarted", "OSVersion %s: Job %s/%s fetches and writes %s to the inactive slot", osv.Name, j.Namespace, j.Name, osv.Spec.Version)
	}
	return errors.Join(errs...)
}

// staleStageJobs are the stage Jobs among jobs (one rollout's) that still
// run for another target than spec's on a node of byName: finished Jobs,
// Jobs being deleted and Jobs of nodes that are gone are left to their
// TTL.
func staleStageJobs(spec kesov1.OSVersionSpec, jobs []*batchv1.Job, byName map[string]*corev1.Node) []*batchv1.Job {
	var stale []*batchv1.Job
	for _, j := range jobs {
		n := byName[j.Labels[JobLabel]]
		st := JobStateOf(j)
		if n == nil || j.DeletionTimestamp != nil || st.Succeeded || st.Failed ||
			j.Name == StageJobName(n.Name, spec, KesoArch(n.Status.NodeInfo.Architecture)) {
			continue
		}
		stale = append(stale, j)
	}
	return stale
}

// advance moves one in-flight node one step. It reports whether the node
// failed (so nothing new starts in this pass).
func (r *Reconciler) advance(osv *kesov1.OSVersion, node *corev1.Node, now time.Time) (bool, error) {
	info := nodeOf(node)
	c := *info.Claim
	var job JobState
	if j, err := r.Jobs.Cache().Get(r.Job.Namespace, JobName(node.Name, c)); err == nil {
		job = JobStateOf(j)
	} else if !apierrors.IsNotFound(err) {
		return false, err
	}
	var drain DrainPlan
	if c.Phase == kesov1.NodeDraining && info.Unschedulable && DrainEnabled(osv.Spec) {
		pods, err := r.Kube.CoreV1().Pods("").List(context.TODO(), metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node.Name).String(),
		})
		if err != nil {
			return false, fmt.Errorf("list pods on node %s: %w", node.Name, err)
		}
		drain = PlanDrain(pods.Items, osv.Spec.Drain)
	}
	act := Advance(osv.Spec, c, info, job, drain, now)
	switch act.Kind {
	case ActWait:
		return false, nil
	case ActCordon:
		n := node.DeepCopy()
		n.Spec.Unschedulable = true
		_, err := r.Nodes.Update(n)
		return false, wrap("cordon node", node.Name, err)
	case ActDrain:
		return false, r.evict(osv, node.Name, drain)
	case ActCreateJob:
		j := UpgradeJob(osv, info, c, r.Job)
		warnings, err := r.createJob(j)
		switch {
		case err == nil, apierrors.IsAlreadyExists(err):
		case refused(err):
			// A cluster policy refused the Job: say so in the claim (node
			// status, condition Blocked) and in events; Advance gives the
			// node back after JobStartTimeout.
			msg := "JobRefused: the API server refused the upgrade Job: " + err.Error()
			if c.Message == msg {
				return false, nil
			}
			if c.Blocked.IsZero() {
				c.Blocked = now
			}
			c.Message = msg
			r.Log("osversion %s: node %s: %s", osv.Name, node.Name, msg)
			if err := r.updateClaim(node, c, nil); err != nil {
				return false, err
			}
			r.Recorder.Eventf(node, corev1.EventTypeWarning, "UpgradeJobRefused", "OSVersion %s: %s", osv.Name, msg)
			r.Recorder.Eventf(osv, corev1.EventTypeWarning, "UpgradeJobRefused", "node %s: %s; the node is given back after %s unless this is fixed", node.Name, msg, JobStartTimeout(osv.Spec))
			return false, nil
		default:
			return false, fmt.Errorf("create Job %s/%s for node %s: %w", j.Namespace, j.Name, node.Name, err)
		}
		if c.Phase != kesov1.NodeUpgrading {
			c.Phase, c.Since, c.Message = kesov1.NodeUpgrading, now, "Job "+j.Name
			c.Blocked, c.Warning = time.Time{}, strings.Join(warnings, "; ")
			if err := r.updateClaim(node, c, nil); err != nil {
				return false, err
			}
			r.Recorder.Eventf(node, corev1.EventTypeNormal, "UpgradeJobStarted", "OSVersion %s: drained, Job %s/%s started", osv.Name, j.Namespace, j.Name)
			if c.Warning != "" {
				r.Recorder.Eventf(osv, corev1.EventTypeWarning, "UpgradeJobWarning", "node %s: the API server warned about Job %s/%s: %s", node.Name, j.Namespace, j.Name, c.Warning)
			}
		}
		return false, nil
	case ActBlock:
		if c.Blocked.IsZero() {
			c.Blocked = now
		}
		c.Message = act.Reason
		if err := r.updateClaim(node, c, nil); err != nil {
			return false, err
		}
		r.Log("osversion %s: node %s: blocked: %s", osv.Name, node.Name, act.Reason)
		r.Recorder.Eventf(node, corev1.EventTypeWarning, "UpgradeBlocked", "OSVersion %s: %s", osv.Name, act.Reason)
		r.Recorder.Eventf(osv, corev1.EventTypeWarning, "UpgradeBlocked", "node %s: %s; the node is given back after %s unless this is fixed", node.Name, act.Reason, JobStartTimeout(osv.Spec))
		return false, nil
	case ActSucceed:
		c.Phase, c.Since, c.Message = kesov1.NodeUpgraded, now, ""
		uncordon := c.Cordoned
		if err := r.updateClaim(node, c, func(n *corev1.Node) {
			if uncordon {
				n.Spec.Unschedulable = false
			}
		}); err != nil {
			return false, err
		}
		r.Metrics.Duration.WithLabelValues(osv.Name).Observe(now.Sub(c.Started).Seconds())
		r.Log("osversion %s: node %s: upgraded to %s", osv.Name, node.Name, c.Target)
		r.Recorder.Eventf(node, corev1.EventTypeNormal, "Upgraded", "OSVersion %s: Ready on %s, uncordoned", osv.Name, c.Target)
		return false, nil
	case ActFail:
		if act.Release {
			// The upgrade never ran: delete its Job first (it must not get
			// a pod on the uncordoned node later), then give the node back.
			name := JobName(node.Name, c)
			if err := r.deleteJob(name); err != nil {
				return false, fmt.Errorf("delete Job %s/%s of node %s: %w", r.Job.Namespace, name, node.Name, err)
			}
		}
		c.Phase, c.Since, c.Message = kesov1.NodeFailed, now, act.Reason
		uncordon := act.Release && c.Cordoned
		if err := r.updateClaim(node, c, func(n *corev1.Node) {
			if uncordon {
				n.Spec.Unschedulable = false
			}
		}); err != nil {
			return false, err
		}
		reason, _, _ := strings.Cut(act.Reason, ":")
		r.Metrics.Failures.WithLabelValues(osv.Name, reason).Inc()
		r.Log("osversion %s: node %s: FAILED: %s; rollout halted", osv.Name, node.Name, act.Reason)
		r.Recorder.Eventf(node, corev1.EventTypeWarning, "UpgradeFailed", "OSVersion %s: %s", osv.Name, act.Reason)
		r.Recorder.Eventf(osv, corev1.EventTypeWarning, "NodeFailed", "node %s failed: %s; rollout halted until the spec changes or annotation %s changes", node.Name, act.Reason, ResumeAnnotation)
		return true, nil
	}
	return false, nil
}

// regressed records that a node counted Upgraded to the target came back on
// another version: its claim becomes Failed (Regressed), which halts the
// rollout for this target until keso.io/resume changes; never re-upgraded
// in a loop.
func (r *Reconciler) regressed(osv *kesov1.OSVersion, rollout Rollout, node *corev1.Node, reason string, now time.Time) error {
	c := *nodeOf(node).Claim
	c.Phase, c.Since, c.Message = kesov1.NodeFailed, now, reason
	c.Regressed, c.Generation, c.Resume = true, osv.Generation, rollout.Resume
	if err := r.updateClaim(node, c, nil); err != nil {
		return err
	}
	r.Metrics.Failures.WithLabelValues(osv.Name, "RolledBackAfterUpgrade").Inc()
	r.Log("osversion %s: node %s: %s; rollout halted", osv.Name, node.Name, reason)
	r.Recorder.Eventf(node, corev1.EventTypeWarning, "UpgradeFailed", "OSVersion %s: %s", osv.Name, reason)
	r.Recorder.Eventf(osv, corev1.EventTypeWarning, "NodeFailed", "node %s failed: %s; rollout halted until annotation %s changes", node.Name, reason, ResumeAnnotation)
	return nil
}

// deleteJob deletes one of the operator's Jobs with its pods (background
// propagation: there is no orphan to leave); a Job already gone is fine.
func (r *Reconciler) deleteJob(name string) error {
	bg := metav1.DeletePropagationBackground
	if err := r.Jobs.Delete(r.Job.Namespace, name, &metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// createJob creates the Job and returns the API server's warnings (e.g.
// PodSecurity's "would violate", which admission only warns about for a
// Job; it refuses the Job's pods).
func (r *Reconciler) createJob(j *batchv1.Job) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := r.Kube.BatchV1().RESTClient().Post().Namespace(j.Namespace).Resource("jobs").Body(j).Do(ctx)
	var warnings []string
	for _, w := range res.Warnings() {
		warnings = append(warnings, w.Text)
	}
	return warnings, res.Error()
}

// refused reports whether a create error is the API server's answer about
// the object (validation, authorization, admission, a missing namespace),
// which retrying will not change, rather than a transient failure.
func refused(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) ||
		apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err)
}

func (r *Reconciler) updateClaim(node *corev1.Node, c Claim, mutate func(*corev1.Node)) error {
	n := node.DeepCopy()
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	n.Annotations[ClaimAnnotation] = c.Encode()
	if mutate != nil {
		mutate(n)
	}
	_, err := r.Nodes.Update(n)
	return wrap("update claim on node", node.Name, err)
}

// evict asks the Eviction API to remove each pod; a PodDisruptionBudget
// that forbids it (429) is retried on the next pass.
func (r *Reconciler) evict(osv *kesov1.OSVersion, node string, d DrainPlan) error {
	for _, id := range d.Evict {
		ns, name, _ := strings.Cut(id, "/")
		// The API server can hold an eviction while a budget's status is
		// being computed; bound each call so one pod cannot stall a worker.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := r.Kube.CoreV1().Pods(ns).EvictV1(ctx, &policyv1.Eviction{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		})
		cancel()
		switch {
		case err == nil, apierrors.IsNotFound(err):
		case apierrors.IsTooManyRequests(err):
			r.Log("osversion %s: node %s: eviction of %s refused for now (PodDisruptionBudget): %v", osv.Name, node, id, err)
		default:
			return fmt.Errorf("evict pod %s from node %s: %w", id, node, err)
		}
	}
	return nil
}

// writeStatus updates the OSVersion's status when it changed, keeping a
// condition's lastTransitionTime while its status stays the same.
func (r *Reconciler) writeStatus(osv *kesov1.OSVersion, plan Plan) error {
	st := plan.Status
	for i := range st.Conditions {
		for _, old := range osv.Status.Conditions {
			if old.Type == st.Conditions[i].Type && old.Status == st.Conditions[i].Status {
				st.Conditions[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	for i := range st.Nodes {
		for _, old := range osv.Status.Nodes {
			if old.Name == st.Nodes[i].Name && old.Phase == st.Nodes[i].Phase && st.Nodes[i].Message == "starting" {
				st.Nodes[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	if equality.Semantic.DeepEqual(st, osv.Status) {
		return nil
	}
	if osv.Status.State != st.State {
		typ := corev1.EventTypeNormal
		if st.State == StateHalted || st.State == StateInvalid {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(osv, typ, "Rollout"+st.State, "%s: %d of %d nodes on %s", st.State, st.Upgraded, st.Total, osv.Spec.Version)
	}
	o := osv.DeepCopy()
	o.Status = st
	_, err := r.OSVersions.UpdateStatus(o)
	return wrap("update status of OSVersion", osv.Name, err)
}

func (r *Reconciler) observe(name string, st kesov1.OSVersionStatus) {
	counts := map[kesov1.NodePhase]int{}
	for _, n := range st.Nodes {
		counts[n.Phase]++
	}
	for _, p := range []kesov1.NodePhase{kesov1.NodePending, kesov1.NodeDraining, kesov1.NodeUpgrading, kesov1.NodeUpgraded, kesov1.NodeFailed} {
		r.Metrics.Nodes.WithLabelValues(name, string(p)).Set(float64(counts[p]))
	}
}

func wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}
