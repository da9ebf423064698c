package operator

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Labels on upgrade Jobs and their pods.
const (
	JobLabel       = "keso.io/upgrade-node"
	OSVersionLabel = "keso.io/osversion"
	TargetLabel    = "keso.io/target-version"
	// StepLabel is "stage" on stage Jobs (absent on upgrade Jobs).
	StepLabel = "keso.io/upgrade-step"
)

// StageDeadline bounds a stage Job: a day, time for a whole image over the
// poorest link (56 kbit/s: 80 MiB in 3.3 hours) with room for outages.
const StageDeadline = 24 * time.Hour

// stageBackoffLimit is how often a failed stage pod is retried, with the
// Job controller's growing delay (10 s doubling to 6 minutes: about 20
// minutes in all); each retry resumes the download. A stage that still
// fails leaves the node to its upgrade Job in the window, which fetches
// what is missing.
const stageBackoffLimit = 6

// hostMounts are the host paths `keso upgrade` uses, mounted at the same
// paths: /dev (root slots, ESP), /sys (find partitions by label),
// /run/keso (effective config, boot status, ESP mount point),
// /var/lib/keso (upgrade state and download work folder, on KESO_STATE),
// and read-only /etc/os-release and /usr/share/keso (running version,
// release keys).
var hostMounts = []struct {
	name, path string
	typ        corev1.HostPathType
	readOnly   bool
}{
	{"dev", "/dev", corev1.HostPathDirectory, false},
	{"sys", "/sys", corev1.HostPathDirectory, false},
	{"run", "/run/keso", corev1.HostPathDirectoryOrCreate, false},
	{"state", "/var/lib/keso", corev1.HostPathDirectoryOrCreate, false},
	{"os-release", "/etc/os-release", corev1.HostPathFile, true},
	{"share", "/usr/share/keso", corev1.HostPathDirectory, true},
}

// JobConfig is what the Job template needs from the operator's settings.
type JobConfig struct {
	Namespace string // where Jobs run (the operator's namespace)
	Image     string // the keso image (the operator's own image)
}

var nameUnsafe = regexp.MustCompile(`[^a-z0-9-]+`)

// JobName is the upgrade Job's name for a node's claim: derived from the
// node, the target version and the claim's start time, so creating it twice
// for the same claim is harmless (a restarted controller finds the Job it
// made), a retry after a resume gets a fresh Job, and it is at most 63
// characters.
func JobName(node string, c Claim) string {
	sum := sha256.Sum256([]byte(node + "\x00" + c.Target + "\x00" + c.Started.UTC().Format(time.RFC3339Nano)))
	return "keso-upgrade-" + jobBase(node) + "-" + hex.EncodeToString(sum[:])[:8]
}

// StageJobName is the stage Job's name for node n in rollout spec:
// derived from the node, the target version and its image's sha256, so a
// restarted controller finds the Job it made and a new target (or a
// republished image) gets a new Job. At most 63 characters.
func StageJobName(node string, spec kesov1.OSVersionSpec, arch string) string {
	sum := sha256.Sum256([]byte(node + "\x00" + spec.Version + "\x00" + string(spec.SHA256[arch]) + "\x00stage"))
	return "keso-stage-" + jobBase(node) + "-" + hex.EncodeToString(sum[:])[:8]
}

// jobBase is the node's name made safe for a Job name, at most 40
// characters.
func jobBase(node string) string {
	base := strings.Trim(nameUnsafe.ReplaceAllString(strings.ToLower(node), "-"), "-")
	if len(base) > 40 {
		base = strings.TrimRight(base[:40], "-")
	}
	return base
}

// ImageURL expands the spec's image template for an architecture in keso's
// names (KesoArch of the node's).
func ImageURL(spec kesov1.OSVersionSpec, arch string) string {
	return strings.NewReplacer("{arch}", arch, "{version}", spec.Version).Replace(spec.Image)
}

// UpgradeJob is the Job that upgrades node n to osv's version. The template:
//
//   - pinned to the node by a required node affinity on metadata.name (like
//     a DaemonSet pod), tolerating every taint, so the cordon does not keep
//     it off its node;
//   - one privileged container from the keso image (the node's own,
//     imported from the air-gap folder: imagePullPolicy Never) running
//     `keso upgrade --image URL --sha256 HEX --reboot` (URL from the
//     spec's template for the node's arch);
//   - the host paths in hostMounts (/dev, /sys, /run/keso, /var/lib/keso,
//     read-only /etc/os-release and /usr/share/keso) at the same paths;
//   - hostPID, so the reboot request (a signal to PID 1) reaches keso-init;
//   - restartPolicy Never and backoffLimit 0: a failure is reported, not
//     retried behind the operator's back; activeDeadlineSeconds is the
//     upgrade timeout;
//   - no service account token: the Job needs no API access;
//   - owned by the OSVersion, so deleting it removes its Jobs.
func UpgradeJob(osv *kesov1.OSVersion, n Node, c Claim, cfg JobConfig) *batchv1.Job {
	spec := osv.Spec
	labels := map[string]string{JobLabel: n.Name, OSVersionLabel: osv.Name, TargetLabel: spec.Version}
	return nodeJob(osv, n.Name, JobName(n.Name, c), labels, upgradeCommand(spec, KesoArch(n.Arch), "--reboot"),
		UpgradeTimeout(spec), 0, true, cfg)
}

// StageJob is the Job that stages osv's image on node n: the same pod as
// UpgradeJob's but `keso upgrade ... --stage` (fetch, verify, write the
// inactive slot; nothing armed, no reboot, so no hostPID). It runs at any
// hour, without cordon or drain: the node keeps its pods. Its pod is
// retried stageBackoffLimit times and the Job ends after StageDeadline.
func StageJob(osv *kesov1.OSVersion, n Node, cfg JobConfig) *batchv1.Job {
	spec := osv.Spec
	arch := KesoArch(n.Arch)
	labels := map[string]string{JobLabel: n.Name, OSVersionLabel: osv.Name, TargetLabel: spec.Version, StepLabel: "stage"}
	return nodeJob(osv, n.Name, StageJobName(n.Name, spec, arch), labels, upgradeCommand(spec, arch, "--stage"),
		StageDeadline, stageBackoffLimit, false, cfg)
}

// nodeJob is the pod template the upgrade and stage Jobs share.
func nodeJob(osv *kesov1.OSVersion, node, name string, labels map[string]string, command []string,
	deadline time.Duration, backoff int32, hostPID bool, cfg JobConfig) *batchv1.Job {
	var vols []corev1.Volume
	var mounts []corev1.VolumeMount
	for _, hp := range hostMounts {
		t := hp.typ
		vols = append(vols, corev1.Volume{Name: hp.name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hp.path, Type: &t}}})
		mounts = append(mounts, corev1.VolumeMount{Name: hp.name, MountPath: hp.path, ReadOnly: hp.readOnly})
	}
	secs := int64(deadline.Seconds())
	return &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: cfg.Namespace, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: kesov1.SchemeGroupVersion.String(), Kind: "OSVersion",
				Name: osv.Name, UID: osv.UID, Controller: ptr.To(true),
			}},
		},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To(backoff),
			ActiveDeadlineSeconds:   &secs,
			TTLSecondsAfterFinished: ptr.To[int32](24 * 3600),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                 corev1.RestartPolicyNever,
					HostPID:                       hostPID,
					AutomountServiceAccountToken:  ptr.To(false),
					PriorityClassName:             "system-node-critical",
					TerminationGracePeriodSeconds: ptr.To[int64](30),
					Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
							NodeSelectorTerms: []corev1.NodeSelectorTerm{{
								MatchFields: []corev1.NodeSelectorRequirement{{
									Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node},
								}},
							}},
						},
					}},
					Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{
						Name:            "upgrade",
						Image:           cfg.Image,
						ImagePullPolicy: corev1.PullNever,
						Command:         command,
						SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
						VolumeMounts:    mounts,
					}},
					Volumes: vols,
				},
			},
		},
	}
}

// upgradeCommand is the Job's keso upgrade for a node of arch, ending in
// step: --reboot (the upgrade Job: it arms what the stage Job staged
// without fetching it again, or fetches what is missing) or --stage.
func upgradeCommand(spec kesov1.OSVersionSpec, arch, step string) []string {
	cmd := []string{"/keso", "upgrade", "--image", ImageURL(spec, arch), "--sha256", string(spec.SHA256[arch])}
	if spec.MaxRate != nil && spec.MaxRate.Sign() > 0 {
		cmd = append(cmd, "--max-rate", spec.MaxRate.String())
	}
	return append(cmd, step)
}

// JobStateOf reads a Job's outcome.
func JobStateOf(j *batchv1.Job) JobState {
	if j == nil {
		return JobState{}
	}
	s := JobState{Exists: true, Created: j.CreationTimestamp.Time}
	st := j.Status
	s.HasPods = st.Active+st.Succeeded+st.Failed > 0 || ptr.Deref(st.Terminating, 0) > 0 || ptr.Deref(st.Ready, 0) > 0 ||
		(st.UncountedTerminatedPods != nil && len(st.UncountedTerminatedPods.Succeeded)+len(st.UncountedTerminatedPods.Failed) > 0)
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			s.Succeeded = true
		case batchv1.JobFailed:
			s.Failed = true
			s.Message = strings.TrimSpace(c.Reason + " " + c.Message)
		}
	}
	return s
}
