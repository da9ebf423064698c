package agent

import (
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/kmod"
)

type recordLoader struct{ loaded []string }

func (r *recordLoader) LoadModule(path, params string) error {
	r.loaded = append(r.loaded, path[strings.LastIndex(path, "/")+1:])
	return nil
}

func TestModuleLoaderResolvesDeps(t *testing.T) {
	fs := host.FS{Root: t.TempDir()}
	fs.WriteFileAtomic("/proc/sys/kernel/osrelease", []byte("6.1.0-test\n"), 0o644)
	fs.WriteFileAtomic("/proc/modules", []byte("llc 16384 1 stp, Live 0x0\n"), 0o644)
	fs.WriteFileAtomic("/lib/modules/6.1.0-test/modules.dep", []byte(
		"kernel/net/bridge/br_netfilter.ko: kernel/net/bridge/bridge.ko kernel/net/802/stp.ko kernel/net/llc/llc.ko\n"+
			"kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko\n"+
			"kernel/net/802/stp.ko: kernel/net/llc/llc.ko\nkernel/net/llc/llc.ko:\n"), 0o644)
	fs.MkdirAll("/sys/module/ext4", 0o755)
	r := &recordLoader{}
	m := kmod.NewLoader(fs, r)
	if err := m.Load("br_netfilter"); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(r.loaded, " "), "stp.ko bridge.ko br_netfilter.ko"; got != want {
		t.Errorf("loaded %q, want %q (llc is loaded already)", got, want)
	}
	if err := m.Load("ext4"); err != nil {
		t.Errorf("built-in module: %v", err)
	}
	if err := m.Load("nosuch"); err == nil {
		t.Errorf("unknown module loaded without error")
	}
}
