package v1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Condition types of an OSVersion.
const (
	// ConditionValidated is True when the spec passed the operator's checks
	// beyond the schema (image template, checksums for every selected arch).
	ConditionValidated = "Validated"
	// ConditionProgressing is True while nodes are being upgraded.
	ConditionProgressing = "Progressing"
	// ConditionComplete is True when every selected node runs spec.version.
	ConditionComplete = "Complete"
	// ConditionHalted is True when a node failed; nothing new starts until the
	// spec changes or an admin resumes (annotation keso.io/resume).
	ConditionHalted = "Halted"
	// ConditionBlocked is True while a node cannot get its upgrade Job
	// running: the API server refused the Job, or no pod of it could be
	// created (e.g. PodSecurity forbids privileged pods in the Job's
	// namespace). The message names the node and the API server's reason.
	ConditionBlocked = "Blocked"
)

// NodePhase is where one node is in its upgrade.
// +enum
type NodePhase string

// Node phases, in order.
const (
	// NodePending: selected, not on the target version, not started.
	NodePending NodePhase = "Pending"
	// NodeDraining: cordoned, pods being evicted.
	NodeDraining NodePhase = "Draining"
	// NodeUpgrading: the upgrade Job runs; waiting for the node to reboot
	// into the target version, become Ready and commit its new slot.
	NodeUpgrading NodePhase = "Upgrading"
	// NodeUpgraded: running the target version with its slot committed
	// (node annotations keso.io/version and keso.io/committed), uncordoned.
	NodeUpgraded NodePhase = "Upgraded"
	// NodeFailed: the Job was refused or failed, the node rolled back (also
	// after it was counted Upgraded), or a timeout passed.
	NodeFailed NodePhase = "Failed"
)

// Weekday is a day of the week, English three-letter abbreviation.
// +enum
type Weekday string

// Days of the week accepted in a maintenance window.
const (
	Monday    Weekday = "Mon"
	Tuesday   Weekday = "Tue"
	Wednesday Weekday = "Wed"
	Thursday  Weekday = "Thu"
	Friday    Weekday = "Fri"
	Saturday  Weekday = "Sat"
	Sunday    Weekday = "Sun"
)

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// OSVersion selects a set of nodes and the keso OS version they must run.
// The keso operator upgrades the selected nodes that run another version,
// a few at a time, by cordoning, draining and running `keso upgrade` on each.
type OSVersion struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired OS version and how to roll it out.
	Spec OSVersionSpec `json:"spec"`
	// Status is the progress of the rollout, written by the operator.
	// +optional
	Status OSVersionStatus `json:"status,omitempty"`
}

// OSVersionSpec is the desired OS version of the selected nodes and the
// rules of the rollout.
// +k8s:validation:cel[0]:rule="!(has(self.concurrency) && has(self.maxUnavailable))"
// +k8s:validation:cel[0]:message="set concurrency or maxUnavailable, not both"
// +k8s:validation:cel[1]:rule="self.image.contains('{version}') || self.image.contains(self.version)"
// +k8s:validation:cel[1]:message="image must contain {version} or the version itself"
type OSVersionSpec struct {
	// Version is the keso release to run, e.g. "1.4.0". A node runs it when
	// its status.nodeInfo.osImage is "keso <version>".
	// +k8s:validation:pattern="^v?[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$"
	// +k8s:validation:maxLength=64
	Version string `json:"version"`
	// Image is the URL template of the upgrade artifact (the root squashfs).
	// "{arch}" becomes the node's architecture in keso's names (amd64, arm64,
	// armv7; a node Kubernetes reports as "arm" is armv7), matching the
	// builder's keso-<version>-<arch>.squashfs, and "{version}" the version.
	// Schemes: https://, http://, file://, oci://.
	// +k8s:validation:pattern="^(https?|file|oci)://[^\\s]+$"
	// +k8s:validation:maxLength=2048
	Image string `json:"image"`
	// SHA256 maps an architecture in keso's names (amd64, arm64, armv7) to
	// the lowercase hex SHA-256 of that architecture's artifact. Nodes that
	// Kubernetes reports as "arm" (32-bit ARM) use the armv7 entry. Every
	// architecture among the selected nodes needs an entry.
	// +k8s:validation:minProperties=1
	// +k8s:validation:maxProperties=3
	// +k8s:validation:cel[0]:rule="!('arm' in self)"
	// +k8s:validation:cel[0]:message="sha256 key arm: use armv7, keso's name for 32-bit ARM (Kubernetes reports those nodes as arm)"
	// +k8s:validation:cel[1]:rule="self.all(k, k in ['amd64', 'arm64', 'armv7'])"
	// +k8s:validation:cel[1]:message="sha256 keys must be keso architecture names: amd64, arm64 or armv7"
	SHA256 map[string]SHA256Sum `json:"sha256"`
	// NodeSelector selects the nodes to upgrade. Empty or absent selects
	// every node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	// Concurrency is how many nodes upgrade at the same time (default 1).
	// Mutually exclusive with maxUnavailable.
	// +optional
	// +k8s:validation:minimum=1
	// +k8s:validation:maximum=1000
	Concurrency *int32 `json:"concurrency,omitempty"`
	// MaxUnavailable bounds the selected nodes that may be unavailable
	// (NotReady, cordoned or upgrading) at once: a number or a percentage
	// of the selected nodes ("10%", rounded down, at least 1). Mutually
	// exclusive with concurrency.
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	// Drain controls how pods leave a node before it upgrades.
	// +optional
	Drain DrainSpec `json:"drain,omitempty"`
	// Paused stops new nodes from starting; nodes already upgrading finish.
	// +optional
	Paused bool `json:"paused,omitempty"`
	// Window restricts when nodes may start upgrading. Absent means any time.
	// +optional
	Window *MaintenanceWindow `json:"window,omitempty"`
	// MaxRate bounds each node's download of the image, in bytes a second
	// (a quantity: "56Ki", "1M"), so that an upgrade never takes the whole
	// of a store's link (keso upgrade --max-rate). Absent or 0: no limit.
	// +optional
	MaxRate *resource.Quantity `json:"maxRate,omitempty"`
	// UpgradeTimeout bounds one node's upgrade, from the start of its Job to
	// the node being Ready on the new version with its slot committed
	// (default 30m). A node that exceeds it halts the rollout.
	// +optional
	UpgradeTimeout *metav1.Duration `json:"upgradeTimeout,omitempty"`
}

// SHA256Sum is the lowercase hex SHA-256 of an upgrade artifact.
// +k8s:validation:pattern="^[a-f0-9]{64}$"
type SHA256Sum string

// DrainSpec mirrors `kubectl drain`: pods are evicted through the Eviction
// API, so PodDisruptionBudgets are respected.
type DrainSpec struct {
	// Enabled drains the node before the upgrade (default true). When false
	// the node is only cordoned.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// Timeout bounds the drain (default 10m); a drain that exceeds it halts
	// the rollout with reason DrainTimeout.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// DeleteEmptyDirData allows evicting pods that use emptyDir volumes
	// (their data is lost). Without it such pods block the drain.
	// +optional
	DeleteEmptyDirData bool `json:"deleteEmptyDirData,omitempty"`
	// IgnoreDaemonSets leaves DaemonSet pods in place (default true). When
	// false, DaemonSet pods block the drain.
	// +optional
	IgnoreDaemonSets *bool `json:"ignoreDaemonSets,omitempty"`
	// Force evicts pods that no controller manages (they are not recreated).
	// Without it such pods block the drain.
	// +optional
	Force bool `json:"force,omitempty"`
}

// MaintenanceWindow is a weekly time range in which nodes may start
// upgrading, e.g. 01:00–05:00 every night in the stores' time zone. A window
// whose end is before its start ends on the next day. Nodes that started
// inside the window finish even after it closes.
type MaintenanceWindow struct {
	// Days on which the window opens; empty means every day.
	// +optional
	// +listType=set
	Days []Weekday `json:"days,omitempty"`
	// Start is the opening time, "HH:MM" (24-hour clock).
	// +k8s:validation:pattern="^([01][0-9]|2[0-3]):[0-5][0-9]$"
	Start string `json:"start"`
	// End is the closing time, "HH:MM"; before Start means the next day.
	// +k8s:validation:pattern="^([01][0-9]|2[0-3]):[0-5][0-9]$"
	End string `json:"end"`
	// TimeZone is an IANA time zone name, e.g. "Europe/Berlin" (default UTC).
	// +optional
	// +k8s:validation:maxLength=64
	TimeZone string `json:"timeZone,omitempty"`
}

// OSVersionStatus is the observed progress of the rollout.
type OSVersionStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Validated, Progressing, Complete, Halted, Blocked.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Nodes has one entry per selected node, sorted by name.
	// +optional
	// +listType=map
	// +listMapKey=name
	Nodes []NodeStatus `json:"nodes,omitempty"`
	// Upgraded counts selected nodes running spec.version with their slot
	// committed.
	// +optional
	Upgraded int32 `json:"upgraded"`
	// Total counts selected nodes.
	// +optional
	Total int32 `json:"total"`
	// Staged counts selected nodes whose inactive slot holds spec.version's
	// image, fetched and checked (keso upgrade --stage) and waiting for the
	// switch in the maintenance window.
	// +optional
	Staged int32 `json:"staged"`
	// Fetched sums the downloads of spec.version's image over the selected
	// nodes not yet on it: bytes on the nodes' disks of the bytes they
	// need, e.g. "4.7Mi/9.3Mi" (the per-node numbers are in nodes).
	// +optional
	Fetched string `json:"fetched,omitempty"`
	// State summarises the conditions for `kubectl get`: Invalid, Paused,
	// Waiting (outside the window), Progressing, Halted or Complete.
	// +optional
	State string `json:"state,omitempty"`
	// Resumed is the last keso.io/resume annotation value the operator
	// acted on.
	// +optional
	Resumed string `json:"resumed,omitempty"`
	// Message says what holds the rollout, when something does: the node
	// and reason of a halt or of a blocked upgrade Job (what to fix), a
	// pause, a closed window, an invalid spec.
	// +optional
	Message string `json:"message,omitempty"`
}

// NodeStatus is one node's place in the rollout.
type NodeStatus struct {
	// Name of the node.
	Name string `json:"name"`
	// FromVersion is the version the node ran before this rollout touched it.
	// +optional
	FromVersion string `json:"fromVersion,omitempty"`
	// Phase of the node's upgrade.
	Phase NodePhase `json:"phase"`
	// Message explains the phase, e.g. why a node failed.
	// +optional
	Message string `json:"message,omitempty"`
	// Staged is true when the node's inactive slot holds spec.version's
	// image, fetched and checked before the maintenance window (stage by
	// day); the switch in the window only arms it and reboots.
	// +optional
	Staged bool `json:"staged,omitempty"`
	// Fetched is how many bytes of its download of spec.version's image
	// the node has on its disk, of Needed, the bytes the download needs in
	// all (a delta's, or the whole image's), as the node reports them
	// (annotation keso.io/stage-progress).
	// +optional
	Fetched int64 `json:"fetched,omitempty"`
	// Needed is the bytes the node's download of spec.version's image
	// needs in all (0 while unknown).
	// +optional
	Needed int64 `json:"needed,omitempty"`
	// LastTransitionTime is when the phase last changed.
	// +optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
}
