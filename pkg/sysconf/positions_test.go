package sysconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
)

// TestFailuresCarryFileLine runs the phases on a k3OS-style config loaded
// through cloudconfig and checks that runtime failures point at the line
// that asked for them.
func TestFailuresCarryFileLine(t *testing.T) {
	const userData = `#cloud-config
hostname: node1
write_files:
- path: /etc/ok
  content: fine
- path: /etc/owned
  owner: nobody
  content: x
k3os:
  modules:
  - nosuch_module
  sysctl:
    vm.nosuch: "1"
`
	res := cloudconfig.LoadFile("user-data", []byte(userData))
	if !res.Valid() {
		t.Fatalf("config invalid: %v", res.Diagnostics)
	}
	where := func(p string) string {
		f, l, _, ok := res.Position(p)
		if !ok {
			return ""
		}
		return fmt.Sprintf("%s:%d", f, l)
	}
	root := t.TempDir()
	put(t, root, map[string]string{
		"/proc/sys/kernel/osrelease":          "6.1.0-test\n",
		"/lib/modules/6.1.0-test/modules.dep": "kernel/a.ko:\n",
		"/etc/passwd":                         "root:x:0:0::/root:/bin/sh\n",
	})
	fsys := host.FS{Root: root}
	var got []string
	for _, run := range []func(*phase.Recorder){
		func(r *phase.Recorder) { Files(&res.Config, fsys, r) },
		func(r *phase.Recorder) { Modules(&res.Config, fsys, nil, r) },
		func(r *phase.Recorder) { Sysctl(&res.Config, fsys, r) },
	} {
		rec := phase.NewRecorder("p", nil, where)
		run(rec)
		for _, f := range rec.Done().Failures {
			got = append(got, f.Path+"@"+f.Where)
		}
	}
	want := []string{"write_files[1].owner@user-data:7", "keso.modules[0]@user-data:11", "keso.sysctl.vm.nosuch@user-data:13"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("failures\n got %v\nwant %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/ok")); err != nil {
		t.Errorf("the valid file was not written: %v", err)
	}
}
