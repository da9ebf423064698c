package esp

import (
	"strings"
	"testing"
)

func TestEntryAndPlan(t *testing.T) {
	e := Entry{File: "slot-b+3.conf", Title: "keso 2", Version: 7, Linux: "/keso/b/vmlinuz", Initrd: "/keso/b/initrd", Options: "keso.slot=b"}
	want := "title keso 2\nsort-key keso\nversion 7\nlinux /keso/b/vmlinuz\ninitrd /keso/b/initrd\noptions keso.slot=b\n"
	if got := e.Render(); got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
	if strings.Contains(LoaderConf, "default") {
		t.Error("loader.conf must not have a default line (it pins a slot past its tries)")
	}
	tr, err := Plan("arm64", "/x/systemd-bootaa64.efi", []Entry{e}, map[string]string{"keso/b/vmlinuz": "/k"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"EFI/BOOT/BOOTAA64.EFI", "loader/loader.conf", "loader/entries/slot-b+3.conf", "keso/b/vmlinuz"} {
		if _, ok := tr[p]; !ok {
			t.Errorf("plan lacks %s", p)
		}
	}
	if _, err := Plan("mips", "", nil, nil); err == nil {
		t.Error("want an error for an arch without a UEFI loader name")
	}
}
