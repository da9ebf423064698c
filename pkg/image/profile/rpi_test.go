package profile

import (
	"strings"
	"testing"
)

func TestRPiValidation(t *testing.T) {
	base := "arch: arm64\nversion: 1\nkernel: {package: k}\nca_certificates: {package: c}\nk3s: {version: v, url: u, sha256: s}\noutputs: [rpi]\n"
	good := base + "rpi: {firmware: {package: raspi-firmware}, uboot: {package: u-boot-rpi}, uboot_builds: {all: rpi_arm64}, dtbs: [broadcom/bcm2837-rpi-3-b.dtb]}\n"
	if _, err := Parse([]byte(good), "good.yaml"); err != nil {
		t.Fatalf("a complete rpi block: %v", err)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"no rpi block", base, "output rpi needs an rpi: block"},
		{"amd64", strings.Replace(good, "arm64", "amd64", 1), "Raspberry Pi images are arm64 or armv7"},
		{"no dtbs", strings.Replace(good, "dtbs: [broadcom/bcm2837-rpi-3-b.dtb]", "dtbs: []", 1), "rpi.dtbs"},
		{"bad filter", strings.Replace(good, "{all: rpi_arm64}", "{pi9: rpi_arm64}", 1), `filter "pi9"`},
		{"no uboot", strings.Replace(good, "uboot: {package: u-boot-rpi}, ", "", 1), "rpi.uboot: set package"},
		{"blobs without package", strings.Replace(good, "dtbs:", "wifi_blobs: [lib/firmware/brcm/x], dtbs:", 1), "rpi.wifi_blobs needs"},
	} {
		_, err := Parse([]byte(tc.yaml), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}
