package profile

import (
	"strings"
	"testing"
)

func TestWiFiBlock(t *testing.T) {
	base := `name: x
arch: arm64
version: 1
kernel: {package: linux-image-arm64}
ca_certificates: {package: ca-certificates}
k3s: {version: v1, url: https://example.com/k3s, sha256: "00"}
outputs: [squashfs]
`
	for _, tc := range []struct{ name, wifi, wantErr string }{
		{"none", "", ""},
		{"good", "wifi: {supplicant: {package: wpasupplicant}, libraries: [libc6, libssl3]}\n", ""},
		{"no supplicant", "wifi: {libraries: [libc6]}\n", "wifi.supplicant: set package"},
		{"no libraries", "wifi: {supplicant: {package: wpasupplicant}}\n", "wifi.libraries: list"},
		{"unknown key", "wifi: {supplicant: {package: wpasupplicant}, libraries: [libc6], libs: [x]}\n", "field libs not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(base+tc.wifi), "test.yaml")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got, want := p.WiFi != nil, tc.wifi != ""; got != want {
					t.Errorf("WiFi set = %v, want %v", got, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestAdminBlock(t *testing.T) {
	base := `name: x
arch: amd64
version: 1
kernel: {package: linux-image-cloud-amd64}
ca_certificates: {package: ca-certificates}
k3s: {version: v1, url: https://example.com/k3s, sha256: "00"}
outputs: [squashfs]
`
	good := "admin: {bash: {package: bash-static}, busybox: {package: busybox-static}, sudo: {package: sudo}, libraries: [libc6]}\n"
	for _, tc := range []struct{ name, admin, wantErr string }{
		{"none", "", ""},
		{"good", good, ""},
		{"no sudo", "admin: {bash: {package: bash-static}, busybox: {package: busybox-static}, libraries: [libc6]}\n", "admin.sudo: set package (sudo)"},
		{"no bash", "admin: {busybox: {package: busybox-static}, sudo: {package: sudo}, libraries: [libc6]}\n", "admin.bash: set package (bash-static)"},
		{"no libraries", "admin: {bash: {package: bash-static}, busybox: {package: busybox-static}, sudo: {package: sudo}}\n", "admin.libraries: list"},
		{"unknown key", strings.Replace(good, "libraries", "libs", 1), "field libs not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(base+tc.admin), "test.yaml")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got, want := p.Admin != nil, tc.admin != ""; got != want {
					t.Errorf("Admin set = %v, want %v", got, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
