package main

import (
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	const info = `22 1 7:0 / / ro,relatime shared:1 - squashfs /dev/loop0 ro,errors=continue
23 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw,size=485M
30 22 254:4 / /keso/state rw,nosuid,nodev,relatime shared:9 - ext4 /dev/vda4 rw
31 22 254:4 /var /var rw,nosuid,nodev,relatime shared:9 - ext4 /dev/vda4 rw
32 22 0:30 / /etc rw,relatime - overlay overlay rw,lowerdir=/sysroot/etc
33 22 0:31 / /etc rw,relatime - tmpfs tmpfs rw
`
	got := map[string]Mount{}
	if err := parseMountinfo(strings.NewReader(info), got); err != nil {
		t.Fatal(err)
	}
	want := map[string]Mount{
		"/":           {FSType: "squashfs", Source: "/dev/loop0", Root: "/", Options: "ro,relatime"},
		"/keso/state": {FSType: "ext4", Source: "/dev/vda4", Root: "/", Options: "rw,nosuid,nodev,relatime"},
		"/var":        {FSType: "ext4", Source: "/dev/vda4", Root: "/var", Options: "rw,nosuid,nodev,relatime"},
		"/etc":        {FSType: "tmpfs", Source: "tmpfs", Root: "/", Options: "rw,relatime"},
	}
	if len(got) != len(want) {
		t.Errorf("got %d mounts %v, want %d", len(got), got, len(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("mount %s = %+v, want %+v", k, got[k], w)
		}
	}
}
