package mountinfo

import "testing"

func TestParse(t *testing.T) {
	text := "20 1 254:2 / / ro,relatime shared:1 - squashfs /dev/vda2 ro\n" +
		"31 20 254:4 /var /var rw,relatime shared:9 - ext4 /dev/vda4 rw\n" +
		"40 31 0:50 / /var/lib/my\\040data rw - tmpfs tmpfs rw\n"
	ms, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(ms), 3; got != want {
		t.Fatalf("got %d mounts, want %d", got, want)
	}
	if m := ms[1]; m.Dev != "254:4" || m.Root != "/var" || m.Source != "/dev/vda4" || m.FSType != "ext4" || len(m.Optional) != 1 {
		t.Errorf("mount 1 = %+v", m)
	}
	if got, want := ms[2].MountPoint, "/var/lib/my data"; got != want {
		t.Errorf("escaped mount point = %q, want %q", got, want)
	}
	tests := []struct{ path, want string }{{"/var/lib/x", "/var"}, {"/etc", "/"}, {"/var/lib/my data/f", "/var/lib/my data"}}
	for _, tt := range tests {
		if m, ok := Containing(ms, tt.path); !ok || m.MountPoint != tt.want {
			t.Errorf("Containing(%q) = %q, want %q", tt.path, m.MountPoint, tt.want)
		}
	}
	if _, err := Parse("garbage\n"); err == nil {
		t.Errorf("Parse(garbage) succeeded")
	}
}
