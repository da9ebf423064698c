package main

import "testing"

func TestRateFlag(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"56Ki", 56 << 10, true},
		{"1M", 1000000, true},
		{"3Mi", 3 << 20, true},
		{"7000", 7000, true},
		{"0", 0, true},
		{"-1Ki", 0, false},
		{"3x", 0, false},
		{"fast", 0, false},
	} {
		var r rateFlag
		err := r.Set(c.in)
		if got := int64(r); (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("--max-rate %s: %d, %v; want %d (ok %v)", c.in, got, err, c.want, c.ok)
		}
	}
}
