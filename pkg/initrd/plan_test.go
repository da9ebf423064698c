package initrd

import (
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/cmdline"
)

func TestPlanFromCmdline(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	tests := []struct {
		cmd     string
		want    Plan
		wantErr string
	}{
		{cmd: "console=ttyS0 panic=10", want: Plan{Mode: ModeAuto, RootWait: DefaultRootWait}},
		{cmd: "keso.live quiet", want: Plan{Mode: ModeLive, RootWait: DefaultRootWait}},
		{cmd: "keso.slot=B keso.debug", want: Plan{Mode: ModeDisk, Slot: "b", Debug: true, RootWait: DefaultRootWait}},
		{cmd: "keso.root=http://10.0.2.2:8080/rootfs.squashfs keso.root_sha256=" + strings.ToUpper(sha) + " keso.root_wait=5",
			want: Plan{Mode: ModeNetboot, URL: "http://10.0.2.2:8080/rootfs.squashfs", SHA256: sha, RootWait: 5 * time.Second}},
		{cmd: "keso.root=https://x/r.sq keso.root_wait=2m", want: Plan{Mode: ModeNetboot, URL: "https://x/r.sq", RootWait: 2 * time.Minute}},
		{cmd: "keso.slot=c", wantErr: `keso.slot="c": want a or b`},
		{cmd: "keso.root=tftp://x/r", wantErr: "want an http:// or https:// URL"},
		{cmd: "keso.root=http://x/r keso.root_sha256=abc", wantErr: "want 64 hex digits"},
		{cmd: "keso.live keso.slot=a", wantErr: "conflicting boot modes on the command line: keso.slot, keso.live"},
		{cmd: "keso.root_wait=soon", wantErr: "want a duration"},
	}
	for _, tt := range tests {
		got, err := PlanFromCmdline(cmdline.Parse(tt.cmd))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("PlanFromCmdline(%q) error = %v, want it to contain %q", tt.cmd, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("PlanFromCmdline(%q): %v", tt.cmd, err)
			continue
		}
		if got != tt.want {
			t.Errorf("PlanFromCmdline(%q) = %+v, want %+v", tt.cmd, got, tt.want)
		}
	}
}

func TestLayerPlan(t *testing.T) {
	withState := LayerPlan("/sysroot", "/sysroot/keso/state", "/run/keso")
	wantState := []MountOp{
		{Source: "tmpfs", Target: "/sysroot/tmp", FSType: "tmpfs", Data: "mode=1777"},
		{Source: "/sysroot/keso/state/var", Target: "/sysroot/var", Bind: true, Mkdir: []string{"/sysroot/keso/state/var"}},
		{Source: "/sysroot/keso/state/home", Target: "/sysroot/home", Bind: true, Mkdir: []string{"/sysroot/keso/state/home"}},
		{Source: "/sysroot/keso/state/root", Target: "/sysroot/root", Bind: true, Mkdir: []string{"/sysroot/keso/state/root"}},
		{Source: "/sysroot/keso/state/opt", Target: "/sysroot/opt", Bind: true, Mkdir: []string{"/sysroot/keso/state/opt"}},
		{Source: "overlay", Target: "/sysroot/etc", FSType: "overlay",
			Data:  "lowerdir=/sysroot/etc,upperdir=/sysroot/keso/state/etc-overlay/upper,workdir=/sysroot/keso/state/etc-overlay/work",
			Mkdir: []string{"/sysroot/keso/state/etc-overlay/upper", "/sysroot/keso/state/etc-overlay/work"}},
	}
	checkOps(t, "with state", withState, wantState)
	noState := LayerPlan("/sysroot", "", "/run/keso")
	wantNo := []MountOp{
		{Source: "tmpfs", Target: "/sysroot/tmp", FSType: "tmpfs", Data: "mode=1777"},
		{Source: "tmpfs", Target: "/sysroot/var", FSType: "tmpfs", Data: "mode=0755"},
		{Source: "tmpfs", Target: "/sysroot/home", FSType: "tmpfs", Data: "mode=0755"},
		{Source: "tmpfs", Target: "/sysroot/root", FSType: "tmpfs", Data: "mode=0700"},
		{Source: "tmpfs", Target: "/sysroot/opt", FSType: "tmpfs", Data: "mode=0755"},
		{Source: "tmpfs", Target: "/run/keso/etc-overlay", FSType: "tmpfs", Data: "mode=0755"},
		{Source: "overlay", Target: "/sysroot/etc", FSType: "overlay",
			Data:  "lowerdir=/sysroot/etc,upperdir=/run/keso/etc-overlay/upper,workdir=/run/keso/etc-overlay/work",
			Mkdir: []string{"/run/keso/etc-overlay/upper", "/run/keso/etc-overlay/work"}},
	}
	checkOps(t, "without state", noState, wantNo)
}

func checkOps(t *testing.T, name string, got, want []MountOp) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d ops %+v, want %d %+v", name, len(got), got, len(want), want)
	}
	for i := range got {
		if got[i].Source != want[i].Source || got[i].Target != want[i].Target || got[i].FSType != want[i].FSType ||
			got[i].Data != want[i].Data || got[i].Bind != want[i].Bind || strings.Join(got[i].Mkdir, ",") != strings.Join(want[i].Mkdir, ",") {
			t.Errorf("%s: op %d = %+v, want %+v", name, i, got[i], want[i])
		}
	}
}
