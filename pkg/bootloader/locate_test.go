package bootloader

import "testing"

func TestLocate(t *testing.T) {
	for _, tc := range []struct {
		cmdline   string
		want      Location
		wantUBoot bool
	}{
		{"console=ttyS0 keso.slot=a", Location{}, false},
		{"console=ttyAMA0 keso.slot=b keso.mbr=1a2b3c4d", Location{MBRDisk: "1a2b3c4d"}, true},
		{"keso.mbr=", Location{}, false},
		{"", Location{}, false},
	} {
		got := Locate(tc.cmdline)
		if got != tc.want || got.UBoot() != tc.wantUBoot {
			t.Errorf("Locate(%q) = %+v (UBoot %v), want %+v (UBoot %v)", tc.cmdline, got, got.UBoot(), tc.want, tc.wantUBoot)
		}
	}
}
