package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/initrd"
	"github.com/keso-os/keso/pkg/k3s"
	"github.com/keso-os/keso/pkg/kubenode"
	"github.com/keso-os/keso/pkg/runcmd"
	"github.com/keso-os/keso/pkg/status"
	"github.com/keso-os/keso/pkg/upgrade"
)

// The annotations the node writes on its own Node (docs/operator.md): the
// operator counts a node upgraded only when its version is the target and
// its slot is committed.
const (
	AnnotationVersion   = "keso.io/version"
	AnnotationSlot      = "keso.io/slot"
	AnnotationCommitted = "keso.io/committed"
	AnnotationRollback  = "keso.io/rollback"
	// AnnotationStaged is "<version> <sha256>" of the image keso upgrade
	// --stage wrote to the other slot, waiting for the switch.
	AnnotationStaged = "keso.io/staged"
	// AnnotationStageProgress is "<sha256> <fetched>/<needed>": the bytes
	// of the current (or last) upgrade download on the node's disk, of the
	// bytes it needs.
	AnnotationStageProgress = "keso.io/stage-progress"
)

// stageAnnotations decides keso.io/staged and keso.io/stage-progress from
// the upgrade state and the download's progress record: each is set when
// there is something to say and removed otherwise.
func stageAnnotations(staged *upgrade.Staged, p upgrade.Progress) (set map[string]string, remove []string) {
	set = map[string]string{}
	if staged != nil {
		set[AnnotationStaged] = staged.ToVersion + " " + staged.SHA256
	} else {
		remove = append(remove, AnnotationStaged)
	}
	if p.SHA256 != "" {
		set[AnnotationStageProgress] = fmt.Sprintf("%s %d/%d", p.SHA256, p.Fetched, p.Needed)
	} else {
		remove = append(remove, AnnotationStageProgress)
	}
	return set, remove
}

// nodeAnnotations decides the keso.io annotations from the boot and its
// assessment (nil when there was none: live and netboot, or an ESP that
// could not be read). It returns the annotations to set and those to
// remove; a key in neither is left as it is.
//
//   - version: always the running version;
//   - slot: "a" or "b" on an installed disk, removed on live and netboot;
//   - committed: "true" when the running slot is committed, and on live and
//     netboot (no trial to wait for); "false" on a trial and when the
//     assessment is unknown (the operator must not count it);
//   - rollback: "<from> -> <to>: <reason>" when the last rollback is newer
//     than the last commit, removed otherwise; left alone when unknown.
func nodeAnnotations(b initrd.Info, bs *upgrade.BootStatus) (set map[string]string, remove []string) {
	set = map[string]string{AnnotationVersion: b.Version}
	if b.Mode != "disk" {
		set[AnnotationCommitted] = "true"
		return set, []string{AnnotationSlot, AnnotationRollback}
	}
	if b.Slot != "" {
		set[AnnotationSlot] = b.Slot
	} else {
		remove = append(remove, AnnotationSlot)
	}
	if bs == nil {
		set[AnnotationCommitted] = "false"
		return set, remove
	}
	set[AnnotationCommitted] = fmt.Sprint(bs.Committed && !bs.Trial)
	if r := bs.LastRollback; r != nil && (bs.LastCommit == nil || r.At.After(bs.LastCommit.At)) {
		set[AnnotationRollback] = fmt.Sprintf("%s -> %s: %s", r.FromVersion, r.ToVersion, r.Reason)
	} else {
		remove = append(remove, AnnotationRollback)
	}
	return set, remove
}

// kubelet reaches the node's own Node with the kubelet's credentials
// (k3s writes them on servers and agents alike).
type kubelet struct {
	fs       host.FS
	plan     k3s.Handoff
	hostname string
}

// client loads the kubelet's kubeconfig and names the node: the kubelet
// certificate's system:node: subject, else k3s's node name.
func (k kubelet) client() (*kubenode.Client, string, error) {
	cfg, err := kubenode.LoadKubeconfig(k.fs, kubenode.KubeletKubeconfig)
	if err != nil {
		return nil, "", err
	}
	name := cfg.NodeName()
	if name == "" {
		name = k.plan.NodeName(k.hostname)
	}
	c, err := kubenode.New(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig %s: %w", kubenode.KubeletKubeconfig, err)
	}
	return c, name, nil
}

// ready tells whether the node is Ready, or why not. A server without a
// kubelet (--disable-agent) is ready when its API server is (/readyz,
// with k3s's admin kubeconfig).
func (k kubelet) ready(ctx context.Context) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if !k.plan.RunsKubelet() {
		cfg, err := kubenode.LoadKubeconfig(k.fs, kubenode.AdminKubeconfig)
		if err != nil {
			return false, fmt.Sprintf("API server not reachable yet: %v", err)
		}
		c, err := kubenode.New(cfg)
		if err == nil {
			err = c.Readyz(ctx)
		}
		if err != nil {
			return false, fmt.Sprintf("API server not ready: %v", err)
		}
		return true, ""
	}
	c, name, err := k.client()
	if err != nil {
		return false, fmt.Sprintf("no kubelet credentials yet: %v", err)
	}
	n, err := c.Get(ctx, name)
	switch {
	case errors.Is(err, kubenode.ErrNotFound):
		return false, fmt.Sprintf("node %s is not registered yet", name)
	case err != nil:
		return false, fmt.Sprintf("node %s: %v", name, err)
	case !n.Ready:
		return false, fmt.Sprintf("node %s is not Ready (%s)", name, n.ReadyReason)
	}
	return true, ""
}

// annotate writes the annotations on the node's own Node.
func (k kubelet) annotate(ctx context.Context, set map[string]string, remove []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, name, err := k.client()
	if err != nil {
		return "", err
	}
	return name, c.Annotate(ctx, name, set, remove)
}

// DefaultHealthCheckTimeout bounds one keso.upgrade.health_checks command.
const DefaultHealthCheckTimeout = time.Minute

// healthGate is the trial's check beyond k3s running: the node Ready, then
// the user's own checks, each exiting 0 within its timeout.
type healthGate struct {
	ready   func(ctx context.Context) (bool, string)
	checks  []cloudconfig.Command
	runner  runcmd.Runner
	env     []string
	timeout time.Duration
}

// check returns whether the node passes, or why not: the first thing that
// fails, with a failing check's output tail.
func (g healthGate) check(ctx context.Context) (bool, string) {
	if ok, why := g.ready(ctx); !ok {
		return false, why
	}
	for i, c := range g.checks {
		var out tailBuffer
		cctx, cancel := context.WithTimeout(ctx, g.timeout)
		err := g.runner.Run(cctx, runcmd.Argv(c), g.env, &out)
		timedOut := cctx.Err() == context.DeadlineExceeded
		cancel()
		if timedOut {
			err = fmt.Errorf("timed out after %s", g.timeout)
		}
		if err != nil {
			why := fmt.Sprintf("keso.upgrade.health_checks[%d] (%s) failed: %v", i, c.String(), err)
			if t := out.tail(); t != "" {
				why += ": " + t
			}
			return false, why
		}
	}
	return true, ""
}

// tailBuffer keeps the last bytes a command wrote.
type tailBuffer struct{ b []byte }

const tailBytes = 400

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4*tailBytes {
		t.b = append([]byte(nil), t.b[len(t.b)-tailBytes:]...)
	}
	return len(p), nil
}

// tail is the last lines of the output, at most tailBytes, on one line.
func (t *tailBuffer) tail() string {
	s := strings.TrimSpace(string(t.b))
	if len(s) > tailBytes {
		s = "…" + s[len(s)-tailBytes:]
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}

var _ io.Writer = (*tailBuffer)(nil)

// annotator writes the node's annotations once per boot as soon as the
// Node exists, retrying every interval while the kubelet's kubeconfig or
// the Node is missing, and again on every request on again (after a trial
// commits). It never blocks the other phases: it runs on its own.
//
// On every interval it also reads what keso upgrade --stage (run by the
// operator's stage Job, or by hand) left in the upgrade state and its
// progress record, and writes keso.io/staged and keso.io/stage-progress
// when they changed.
func (a *Agent) annotator(ctx context.Context, k kubelet, again <-chan struct{}, interval time.Duration) {
	pending := true
	lastErr, written := "", ""
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		stageSet, stageRemove := a.stageState()
		if stage := describeAnnotations(stageSet, stageRemove); pending || stage != written {
			a.stMu.Lock()
			bs := a.st.Upgrade
			if bs != nil {
				c := *bs
				bs = &c
			}
			a.stMu.Unlock()
			set, remove := nodeAnnotations(a.Boot, bs)
			maps.Copy(set, stageSet)
			remove = append(remove, stageRemove...)
			name, err := k.annotate(ctx, set, remove)
			if err == nil {
				if pending {
					fmt.Fprintf(a.Log, "keso: node %s: annotated %s\n", name, describeAnnotations(set, remove))
					a.update(func(s *status.Status) { s.Node = name })
				}
				pending, lastErr, written = false, "", stage
			} else if msg := err.Error(); msg != lastErr {
				// Say it once per distinct reason (the kubelet takes a while).
				lastErr = msg
				fmt.Fprintf(a.Log, "keso: node annotations: %v (retrying every %s)\n", err, interval)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-again:
			pending = true
		case <-tick.C:
		}
	}
}

// stageState reads the staged image and the download's progress from the
// state partition; what cannot be read is reported as nothing staged.
func (a *Agent) stageState() (set map[string]string, remove []string) {
	st, err := upgrade.LoadState(a.FS)
	if err != nil {
		st = upgrade.State{}
	}
	p, err := upgrade.LoadProgress(a.FS)
	if err != nil {
		p = upgrade.Progress{}
	}
	return stageAnnotations(st.Staged, p)
}

func describeAnnotations(set map[string]string, remove []string) string {
	var parts []string
	for k, v := range set {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	for _, k := range remove {
		parts = append(parts, k+"-")
	}
	return strings.Join(parts, " ")
}
