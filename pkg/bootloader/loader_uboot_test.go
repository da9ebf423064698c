package bootloader

import "testing"

func TestUBootDecisions(t *testing.T) {
	env := func(good, try string, left int) UBootEnv {
		return UBootEnv{Good: Slot(good), Try: Slot(try), Left: left}
	}
	retire := []struct {
		in      UBootEnv
		slot    Slot
		want    UBootEnv
		changed bool
		err     bool
	}{
		{env("a", "", 0), "b", env("a", "", 0), false, false},
		{env("a", "b", 2), "b", env("a", "", 0), true, false},
		{env("a", "b", 0), "b", env("a", "", 0), true, false},
		{env("a", "", 0), "a", env("a", "", 0), false, true},
	}
	for _, c := range retire {
		got, changed, err := ubootRetire(c.in, c.slot, UBootEnvPath)
		if got != c.want || changed != c.changed || (err != nil) != c.err {
			t.Errorf("ubootRetire(%+v, %s) = %+v, %v, %v; want %+v, %v, err %v", c.in, c.slot, got, changed, err, c.want, c.changed, c.err)
		}
	}
	prefer := []struct {
		in      UBootEnv
		slot    Slot
		present bool
		want    UBootEnv
		err     bool
	}{
		{env("b", "", 0), "a", true, env("a", "", 0), false},
		{env("a", "b", 2), "a", true, env("a", "b", 0), false}, // rollback off a running trial: the trial is spent
		{env("a", "b", 0), "b", true, env("a", "b", 0), true},  // the failed trial
		{env("a", "", 0), "b", false, env("a", "", 0), true},   // empty slot b of a fresh card
	}
	for _, c := range prefer {
		got, err := ubootPrefer(c.in, c.slot, c.present)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("ubootPrefer(%+v, %s, %v) = %+v, %v; want %+v, err %v", c.in, c.slot, c.present, got, err, c.want, c.err)
		}
	}
	slots := ubootSlots(env("a", "b", 0), map[Slot]string{"b": "keso 1.1.0"})
	if got, want := slots["b"], (SlotBoot{Present: true, Trial: true, Left: 0, Title: "keso 1.1.0"}); got != want {
		t.Errorf("slot b = %+v, want %+v", got, want)
	}
	if got, want := slots["a"], (SlotBoot{Present: true, Title: "keso"}); got != want {
		t.Errorf("slot a = %+v, want %+v", got, want)
	}
	if got := ubootSlots(env("a", "", 0), nil)["b"]; got.Present {
		t.Errorf("untitled slot b of a fresh card = %+v, want not present", got)
	}
}
