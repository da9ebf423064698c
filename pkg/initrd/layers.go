package initrd

import "path"

// MountOp is one mount the stage performs, in order.
type MountOp struct {
	Source, Target, FSType string
	ReadOnly, Bind         bool
	Data                   string
	Mkdir                  []string // directories to create before mounting (on writable file systems)
}

// writableDirs are the directories of the read-only root that keso keeps
// writable: on the state partition when installed (persistent), tmpfs
// otherwise. /home holds rancher's SSH keys, /root root's, /opt is for
// the user's own files, and /var for k3s and keso's state.
var writableDirs = []struct{ name, mode string }{
	{"var", "mode=0755"}, {"home", "mode=0755"}, {"root", "mode=0700"}, {"opt", "mode=0755"},
}

// LayerPlan computes the writable layers on top of the read-only root at
// sysroot. stateDir is where the KESO_STATE file system is mounted, or ""
// when there is none (live, netboot, or a disk without a state partition),
// in which case everything writable is tmpfs under runDir.
func LayerPlan(sysroot, stateDir, runDir string) []MountOp {
	ops := []MountOp{{Source: "tmpfs", Target: path.Join(sysroot, "tmp"), FSType: "tmpfs", Data: "mode=1777"}}
	overlayBase := path.Join(runDir, "etc-overlay")
	if stateDir == "" {
		for _, d := range writableDirs {
			ops = append(ops, MountOp{Source: "tmpfs", Target: path.Join(sysroot, d.name), FSType: "tmpfs", Data: d.mode})
		}
		ops = append(ops, MountOp{Source: "tmpfs", Target: overlayBase, FSType: "tmpfs", Data: "mode=0755"})
	} else {
		overlayBase = path.Join(stateDir, "etc-overlay")
		for _, d := range writableDirs {
			ops = append(ops, MountOp{
				Source: path.Join(stateDir, d.name), Target: path.Join(sysroot, d.name), Bind: true,
				Mkdir: []string{path.Join(stateDir, d.name)},
			})
		}
	}
	upper, work := path.Join(overlayBase, "upper"), path.Join(overlayBase, "work")
	ops = append(ops, MountOp{
		Source: "overlay", Target: path.Join(sysroot, "etc"), FSType: "overlay",
		Data:  "lowerdir=" + path.Join(sysroot, "etc") + ",upperdir=" + upper + ",workdir=" + work,
		Mkdir: []string{upper, work},
	})
	return ops
}
