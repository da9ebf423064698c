package esp

import "testing"

// The removable-media path each arch's firmware looks for (UEFI spec
// 3.5.1.1): keso-build, keso install and upgrades write the loader there.
func TestFallbackName(t *testing.T) {
	for _, tc := range []struct{ arch, want string }{
		{"amd64", "EFI/BOOT/BOOTX64.EFI"},
		{"arm64", "EFI/BOOT/BOOTAA64.EFI"},
		{"armv7", "EFI/BOOT/BOOTARM.EFI"},
		{"riscv64", ""},
	} {
		got, err := FallbackName(tc.arch)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("FallbackName(%q) = %q, %v; want %q", tc.arch, got, err, tc.want)
		}
	}
	tr, err := Plan("armv7", "/loader.efi", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := tr["EFI/BOOT/BOOTARM.EFI"]; n == nil || n.Source != "/loader.efi" {
		t.Errorf("armv7 ESP plan has no BOOTARM.EFI from the loader: %v", tr.Paths())
	}
}
