package mountinfo

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// escape writes s as mountinfo does (space, tab, newline and backslash as
// octal escapes), and every other byte that is not printable ASCII too, so
// that no byte of a field can split it.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '\\' || c >= 0x7f {
			fmt.Fprintf(&b, `\%03o`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// render writes mounts back as mountinfo lines (mount and parent ids are
// not kept by Parse; any number will do).
func render(ms []Mount) string {
	var b strings.Builder
	for i, m := range ms {
		opt := strings.Join(m.Optional, " ")
		if opt != "" {
			opt += " "
		}
		fmt.Fprintf(&b, "%d 1 %s %s %s %s %s- %s %s %s\n", i+2, m.Dev, escape(m.Root), escape(m.MountPoint),
			m.Options, opt, m.FSType, escape(m.Source), m.Super)
	}
	return b.String()
}

// FuzzParse: every mount it returns has its fields filled, and rendering
// the mounts as mountinfo lines parses back to the same mounts.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"20 1 254:2 / / ro,relatime shared:1 - squashfs /dev/vda2 ro\n" +
			"31 20 254:4 /var /var rw,relatime shared:9 - ext4 /dev/vda4 rw\n" +
			"40 31 0:50 / /var/lib/my\\040data rw - tmpfs tmpfs rw\n",
		"22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n" +
			"23 28 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw\n" +
			"28 1 8:1 / / rw,relatime shared:1 master:2 propagate_from:3 unbindable - ext4 /dev/sda1 rw,errors=remount-ro\n" +
			"99 28 0:44 /x\\134y /mnt/a\\011b rw - overlay overlay rw,lowerdir=/a:/b,upperdir=/c,workdir=/d\n",
		"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
		"1 2 3:4 / / rw - tmpfs\n", "garbage\n", "1 2 3 4 5 6 - a b\n", "\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := Parse(s)
		if err != nil {
			if ms != nil {
				t.Fatalf("Parse returned %d mounts with error %v", len(ms), err)
			}
			return
		}
		for _, m := range ms {
			if m.Dev == "" || m.MountPoint == "" || m.Root == "" || m.Options == "" || m.FSType == "" || m.Source == "" {
				t.Fatalf("Parse(%q): mount with an empty field: %+v", s, m)
			}
			for _, o := range m.Optional {
				if o == "" || o == "-" {
					t.Fatalf("Parse(%q): optional field %q in %+v", s, o, m)
				}
			}
		}
		text := render(ms)
		again, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse(render(Parse(%q))) = %v\n%s", s, err, text)
		}
		if len(again) == 0 && len(ms) == 0 {
			return
		}
		if !reflect.DeepEqual(again, ms) {
			t.Fatalf("Parse(%q) = %+v\nrendered:\n%s\nparses to %+v", s, ms, text, again)
		}
	})
}
