package cmdline

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Params
	}{
		{"", nil},
		{"quiet", Params{{Key: "quiet"}}},
		{"console=ttyS0 keso.slot=a", Params{{"console", "ttyS0", true}, {"keso.slot", "a", true}}},
		{`keso.hostname="a b"  ro`, Params{{"keso.hostname", "a b", true}, {Key: "ro"}}},
		{`"keso.x=a b"`, Params{{"keso.x", "a b", true}}},
		{"a= b", Params{{"a", "", true}, {Key: "b"}}},
		{"k3os.password=rancher -- init args", Params{{"k3os.password", "rancher", true}}},
		{"x=a=b\n", Params{{"x", "a=b", true}}},
	}
	for _, tt := range tests {
		got := Parse(tt.in)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestGet(t *testing.T) {
	p := Parse("keso.slot=a keso.debug keso.slot=b")
	if got, ok := p.Get("keso.slot"); got != "b" || !ok {
		t.Errorf("Get(keso.slot) = %q, %v, want b, true", got, ok)
	}
	if got, ok := p.Get("keso.debug"); got != "" || !ok {
		t.Errorf("Get(keso.debug) = %q, %v, want \"\", true", got, ok)
	}
	if p.Has("nope") {
		t.Errorf("Has(nope) = true, want false")
	}
	if got := len(p.WithPrefix("keso.")); got != 3 {
		t.Errorf("len(WithPrefix) = %d, want 3", got)
	}
}
