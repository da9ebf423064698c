package initrd

import "path"

// MountOp is one mount the stage performs, in order.
type MountOp struct {
	Source, Target, FSType string
	ReadOnly, Bind         bool
	Data                   string
	Mkdir                  []string // directories to create before mounting (on writable file systems)
}

// LayerPlan computes the writable layers on top of the read-only root at
// sysroot. stateDir is where the KESO_STATE file system is mounted, or ""
// when there is none (live, netboot, or a disk without a state partition),
// in which case everything writable is tmpfs under runDir.
func LayerPlan(sysroot, stateDir, runDir string) []MountOp {
	ops := []MountOp{{Source: "tmpfs", Target: path.Join(sysroot, "tmp"), FSType: "tmpfs", Data: "mode=1777"}}
	overlayBase := path.Join(runDir, "etc-overlay")
	if stateDir == "" {
		ops = append(ops,
			MountOp{Source: "tmpfs", Target: path.Join(sysroot, "var"), FSType: "tmpfs", Data: "mode=0755"},
			MountOp{Source: "tmpfs", Target: overlayBase, FSType: "tmpfs", Data: "mode=0755"},
		)
	} else {
		overlayBase = path.Join(stateDir, "etc-overlay")
		ops = append(ops, MountOp{
			Source: path.Join(stateDir, "var"), Target: path.Join(sysroot, "var"), Bind: true,
			Mkdir: []string{path.Join(stateDir, "var")},
		})
	}
	upper, work := path.Join(overlayBase, "upper"), path.Join(overlayBase, "work")
	ops = append(ops, MountOp{
		Source: "overlay", Target: path.Join(sysroot, "etc"), FSType: "overlay",
		Data:  "lowerdir=" + path.Join(sysroot, "etc") + ",upperdir=" + upper + ",workdir=" + work,
		Mkdir: []string{upper, work},
	})
	return ops
}
