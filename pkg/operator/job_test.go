package operator

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
	"github.com/keso-os/keso/pkg/image/build"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

func TestJobName(t *testing.T) {
	c1 := Claim{Target: "1.1.0", Started: now}
	c2 := Claim{Target: "1.1.0", Started: now.Add(time.Second)}
	c3 := Claim{Target: "1.2.0", Started: now}
	a, b, c := JobName("node-1", c1), JobName("node-1", c2), JobName("node-1", c3)
	if a == b || a == c || a != JobName("node-1", c1) {
		t.Errorf("JobName not deterministic per claim: %q %q %q", a, b, c)
	}
	long := JobName(strings.Repeat("Very.Long_Name.", 20), c1)
	if len(long) > 63 || strings.ContainsAny(long, "._ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		t.Errorf("JobName(long) = %q (%d chars), want a DNS label of at most 63", long, len(long))
	}
}

// TestUpgradeJobTemplate compares the Job template with the golden file
// testdata/upgrade-job.yaml, which docs/operator.md shows. Regenerate with
// KESO_UPDATE_GOLDEN=1 go test ./pkg/operator -run TestUpgradeJobTemplate.
func TestUpgradeJobTemplate(t *testing.T) {
	osv := &kesov1.OSVersion{
		ObjectMeta: metav1.ObjectMeta{Name: "stores-1.1.0", UID: "0c1d7a3e-0000-4000-8000-000000000001"},
		Spec:       spec(func(s *kesov1.OSVersionSpec) { s.SHA256["arm64"] = kesov1.SHA256Sum(strings.Repeat("f", 64)) }),
	}
	j := UpgradeJob(osv, Node{Name: "store-0042", Arch: "arm64"}, Claim{Target: "1.1.0", Started: now}, JobConfig{Namespace: "keso-system", Image: DefaultImage()})
	got, err := yaml.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "upgrade-job.yaml")
	if os.Getenv("KESO_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file: %v (create it with KESO_UPDATE_GOLDEN=1)", err)
	}
	if string(got) != string(want) {
		t.Errorf("Job template differs from %s:\ngot:\n%s", golden, got)
	}
	c := j.Spec.Template.Spec.Containers[0]
	for _, want := range []string{"https://example.org/keso-1.1.0-arm64.squashfs", strings.Repeat("f", 64)} {
		if !strings.Contains(strings.Join(c.Command, " "), want) {
			t.Errorf("command %v lacks %q", c.Command, want)
		}
	}
	if !*c.SecurityContext.Privileged || j.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchFields[0].Values[0] != "store-0042" {
		t.Errorf("Job not privileged or not pinned to store-0042")
	}
}

// TestUpgradeJobMixedFleet: in a fleet of amd64, arm64 and 32-bit ARM nodes
// (Kubernetes reports the last as "arm"), each node's Job names the file the
// builder writes for its arch (build.UpgradeImageName, keso's arch names)
// and passes that arch's checksum.
func TestUpgradeJobMixedFleet(t *testing.T) {
	sums := map[string]kesov1.SHA256Sum{
		"amd64": kesov1.SHA256Sum(strings.Repeat("a", 64)),
		"arm64": kesov1.SHA256Sum(strings.Repeat("b", 64)),
		"armv7": kesov1.SHA256Sum(strings.Repeat("c", 64)),
	}
	osv := &kesov1.OSVersion{ObjectMeta: metav1.ObjectMeta{Name: "fleet"}, Spec: spec(func(s *kesov1.OSVersionSpec) {
		s.Version, s.SHA256 = "2.0.0", sums
	})}
	nodes := []Node{{Name: "x86", Arch: "amd64"}, {Name: "pi4", Arch: "arm64"}, {Name: "pi2", Arch: "arm"}}
	if err := Validate(osv.Spec, nodes); err != nil {
		t.Fatalf("Validate(mixed fleet) = %v, want nil", err)
	}
	for _, n := range nodes {
		kesoArch := map[string]string{"amd64": "amd64", "arm64": "arm64", "arm": "armv7"}[n.Arch]
		j := UpgradeJob(osv, n, Claim{Target: "2.0.0", Started: now}, JobConfig{Namespace: "keso-system", Image: DefaultImage()})
		args := strings.Join(j.Spec.Template.Spec.Containers[0].Command, " ")
		wantURL := "https://example.org/" + build.UpgradeImageName("2.0.0", kesoArch)
		if !strings.Contains(args, "--image "+wantURL+" ") {
			t.Errorf("node %s (%s): Job command %q, want --image %s", n.Name, n.Arch, args, wantURL)
		}
		if !strings.Contains(args, "--sha256 "+string(sums[kesoArch])+" ") {
			t.Errorf("node %s (%s): Job command %q, want the %s checksum", n.Name, n.Arch, args, kesoArch)
		}
	}
}

// TestUpgradeJobMaxRate: spec.maxRate reaches each node's keso upgrade as
// --max-rate; absent or 0, no limit is passed.
func TestUpgradeJobMaxRate(t *testing.T) {
	for _, c := range []struct {
		rate string // "" = absent
		want string
	}{
		{"", "--reboot"},
		{"0", "--reboot"},
		{"56Ki", "--max-rate 56Ki --reboot"},
		{"1M", "--max-rate 1M --reboot"},
	} {
		osv := &kesov1.OSVersion{ObjectMeta: metav1.ObjectMeta{Name: "slow"}, Spec: spec(func(s *kesov1.OSVersionSpec) {
			if c.rate != "" {
				s.MaxRate = ptr.To(resource.MustParse(c.rate))
			}
		})}
		j := UpgradeJob(osv, Node{Name: "store-1", Arch: "amd64"}, Claim{Target: "1.1.0", Started: now}, JobConfig{Namespace: "keso-system", Image: DefaultImage()})
		args := strings.Join(j.Spec.Template.Spec.Containers[0].Command, " ")
		if got := args[strings.LastIndex(args, string(hash))+len(hash)+1:]; got != c.want {
			t.Errorf("maxRate %q: Job command ends %q, want %q", c.rate, got, c.want)
		}
	}
}

// TestStageJob: the stage Job is the upgrade Job's pod with --stage for
// --reboot, no hostPID (it reboots nothing), retries and a day's deadline;
// its name is stable for a target and changes with the image.
func TestStageJob(t *testing.T) {
	osv := &kesov1.OSVersion{ObjectMeta: metav1.ObjectMeta{Name: "stores", UID: "u1"},
		Spec: spec(func(s *kesov1.OSVersionSpec) { s.MaxRate = ptr.To(resource.MustParse("56Ki")) })}
	n := Node{Name: "store-0042", Arch: "amd64"}
	cfg := JobConfig{Namespace: "keso-system", Image: DefaultImage()}
	sj := StageJob(osv, n, cfg)
	uj := UpgradeJob(osv, n, Claim{Target: "1.1.0", Started: now}, cfg)

	if got, want := strings.Join(sj.Spec.Template.Spec.Containers[0].Command, " "),
		"/keso upgrade --image https://example.org/keso-1.1.0-amd64.squashfs --sha256 "+hash+" --max-rate 56Ki --stage"; got != want {
		t.Errorf("stage command = %q, want %q", got, want)
	}
	if got, want := strings.Join(uj.Spec.Template.Spec.Containers[0].Command, " "),
		"/keso upgrade --image https://example.org/keso-1.1.0-amd64.squashfs --sha256 "+hash+" --max-rate 56Ki --reboot"; got != want {
		t.Errorf("upgrade command = %q, want %q", got, want)
	}
	ps := sj.Spec.Template.Spec
	if ps.HostPID || *sj.Spec.BackoffLimit != stageBackoffLimit || *sj.Spec.ActiveDeadlineSeconds != int64(StageDeadline.Seconds()) {
		t.Errorf("stage Job: hostPID %v, backoffLimit %d, deadline %ds; want false, %d, %d", ps.HostPID, *sj.Spec.BackoffLimit,
			*sj.Spec.ActiveDeadlineSeconds, stageBackoffLimit, int64(StageDeadline.Seconds()))
	}
	if sj.Labels[StepLabel] != "stage" || uj.Labels[StepLabel] != "" || sj.Labels[JobLabel] != n.Name {
		t.Errorf("labels: stage %v, upgrade %v", sj.Labels, uj.Labels)
	}
	// The rest of the pod is the upgrade Job's: host mounts, privileges,
	// node pinning, tolerations, no token, owner.
	ps.HostPID = true
	ps.Containers[0].Command = uj.Spec.Template.Spec.Containers[0].Command
	if got, want := mustYAML(t, ps), mustYAML(t, uj.Spec.Template.Spec); got != want {
		t.Errorf("stage pod differs from the upgrade pod beyond command and hostPID:\n%s\nwant\n%s", got, want)
	}
	if sj.OwnerReferences[0].UID != "u1" {
		t.Errorf("stage Job owner = %+v, want the OSVersion", sj.OwnerReferences)
	}

	other := osv.DeepCopy()
	other.Spec.SHA256["amd64"] = kesov1.SHA256Sum(strings.Repeat("e", 64))
	a, b := StageJobName(n.Name, osv.Spec, "amd64"), StageJobName(n.Name, other.Spec, "amd64")
	if a != sj.Name || a == b || a != StageJobName(n.Name, osv.DeepCopy().Spec, "amd64") {
		t.Errorf("StageJobName: %q, for another image %q, Job %q: want stable per image, new for another", a, b, sj.Name)
	}
	if long := StageJobName(strings.Repeat("Very.Long_Name.", 20), osv.Spec, "amd64"); len(long) > 63 {
		t.Errorf("StageJobName(long) = %q, %d characters", long, len(long))
	}
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStaleStageJobs: a stage Job still running for another target than
// the spec's is stale; the current target's, finished ones, ones being
// deleted and ones of nodes that are gone are not.
func TestStaleStageJobs(t *testing.T) {
	old := &kesov1.OSVersion{ObjectMeta: metav1.ObjectMeta{Name: "stores", UID: "u1"}, Spec: spec()}
	cur := old.DeepCopy()
	cur.Spec.Version = "1.2.0"
	cur.Spec.SHA256["amd64"] = kesov1.SHA256Sum(strings.Repeat("e", 64))
	cfg := JobConfig{Namespace: "keso-system", Image: DefaultImage()}
	byName := map[string]*corev1.Node{}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		byName[name] = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{Architecture: "amd64"}}}
	}
	job := func(osv *kesov1.OSVersion, node string, edit func(j *batchv1.Job)) *batchv1.Job {
		j := StageJob(osv, Node{Name: node, Arch: "amd64"}, cfg)
		if edit != nil {
			edit(j)
		}
		return j
	}
	done := func(c batchv1.JobConditionType) func(j *batchv1.Job) {
		return func(j *batchv1.Job) {
			j.Status.Conditions = []batchv1.JobCondition{{Type: c, Status: corev1.ConditionTrue}}
		}
	}
	jobs := []*batchv1.Job{
		job(old, "a", nil),                       // stale: runs for 1.1.0
		job(cur, "b", nil),                       // the target's
		job(old, "c", done(batchv1.JobComplete)), // finished
		job(old, "d", done(batchv1.JobFailed)),   // finished
		job(old, "e", func(j *batchv1.Job) { j.DeletionTimestamp = &metav1.Time{Time: now} }),
		job(old, "gone", nil), // its node left the cluster
	}
	var got []string
	for _, j := range staleStageJobs(cur.Spec, jobs, byName) {
		got = append(got, j.Labels[JobLabel])
	}
	if want := []string{"a"}; !slices.Equal(got, want) {
		t.Errorf("stale stage Jobs of nodes %v, want %v", got, want)
	}
	if got := staleStageJobs(old.Spec, jobs[:1], byName); len(got) != 0 {
		t.Errorf("the target's own stage Job is stale: %v", got[0].Name)
	}
}
