package netboot

import (
	"strings"
	"testing"
)

func TestScript(t *testing.T) {
	got := string(Script("http://10.0.2.2:8080/", "ab12", "console=ttyS0,115200 panic=10"))
	for _, want := range []string{
		"#!ipxe\n",
		"isset ${keso-base} || set keso-base http://10.0.2.2:8080\n",
		"kernel ${keso-base}/vmlinuz keso.root=${keso-base}/rootfs.squashfs keso.root_sha256=ab12 console=ttyS0,115200 panic=10\n",
		"initrd ${keso-base}/initrd\n",
		"boot\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("script lacks %q:\n%s", want, got)
		}
	}
	if !strings.HasPrefix(got, "#!ipxe\n") {
		t.Errorf("script must start with #!ipxe, got %q", got[:10])
	}
}

func TestParseScript(t *testing.T) {
	tests := []struct {
		sum, cmdline string
	}{
		{"ab12", "console=ttyS0,115200 panic=10"},
		{"ff00", ""},
	}
	for _, tt := range tests {
		sum, cmd, err := ParseScript(Script(DefaultBase, tt.sum, tt.cmdline))
		if err != nil || sum != tt.sum || cmd != tt.cmdline {
			t.Errorf("ParseScript(Script(%q, %q)) = %q, %q, %v; want them back", tt.sum, tt.cmdline, sum, cmd, err)
		}
	}
	for _, bad := range []string{"", "#!ipxe\nkernel http://x/vmlinuz\n", "#!ipxe\nkernel ${keso-base}/vmlinuz keso.root=${keso-base}/rootfs.squashfs keso.root_sha256= x\n"} {
		if _, _, err := ParseScript([]byte(bad)); err == nil {
			t.Errorf("ParseScript(%q): no error", bad)
		}
	}
}
