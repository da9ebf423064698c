package cmdline

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: no key holds a double quote, and a command line rendered back
// from the parameters (each word quoted whole) parses to the same
// parameters, for parameters without quotes in them.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "quiet", "console=ttyS0 keso.slot=a", `keso.hostname="a b"  ro`, `"keso.x=a b"`, "a= b",
		"k3os.password=rancher -- init args", "x=a=b\n",
		"BOOT_IMAGE=/keso/a/vmlinuz root=PARTLABEL=KESO_ROOT_A ro console=tty0 console=ttyS0,115200n8 keso.slot=a keso.mode=disk",
		"keso.mbr=0x1234abcd keso.slot=b rootwait", `k3os.data_sources="cdrom aws" ds=nocloud;s=http://10.0.0.1/seed/`,
		`a="b`, `"`, `""`, `a"b"=c`, "\t\r\n", "--", `"--"`, `x="a b"c d`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps := Parse(s)
		var words []string
		for _, p := range ps {
			if strings.Contains(p.Key, `"`) {
				t.Fatalf("Parse(%q): key %q holds a quote", s, p.Key)
			}
			if p.HasValue && strings.Contains(p.Key, "=") {
				t.Fatalf("Parse(%q): key %q of a key=value holds '='", s, p.Key)
			}
			if !p.HasValue && p.Value != "" {
				t.Fatalf("Parse(%q): flag %q has value %q", s, p.Key, p.Value)
			}
			if strings.Contains(p.Value, `"`) {
				return // no way to write it back quoted
			}
			w := p.Key
			if p.HasValue {
				w += "=" + p.Value
			}
			words = append(words, `"`+w+`"`)
		}
		line := strings.Join(words, " ")
		if again := Parse(line); !reflect.DeepEqual(again, ps) {
			t.Fatalf("Parse(%q) = %#v\nrendered %q parses to %#v", s, ps, line, again)
		}
	})
}
