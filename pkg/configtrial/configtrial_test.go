package configtrial

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/datasource"
)

// memFS is a file system in a map. Writes succeed until cut reaches zero:
// from then on every write and remove fails, as after a power cut (what
// was written before stays).
type memFS struct {
	files map[string]string
	cut   int // writes left before the "power cut"; <0: never
}

func newMem(files map[string]string) *memFS {
	m := &memFS{files: map[string]string{}, cut: -1}
	for k, v := range files {
		m.files[k] = v
	}
	return m
}

func (m *memFS) ReadFile(p string) ([]byte, error) {
	v, ok := m.files[p]
	if !ok {
		return nil, fmt.Errorf("read %s: %w", p, fs.ErrNotExist)
	}
	return []byte(v), nil
}

func (m *memFS) step(p string) error {
	if m.cut == 0 {
		return fmt.Errorf("write %s: power cut", p)
	}
	if m.cut > 0 {
		m.cut--
	}
	return nil
}

func (m *memFS) WriteFileAtomic(p string, data []byte, _ fs.FileMode) error {
	if err := m.step(p); err != nil {
		return err
	}
	m.files[p] = string(data)
	return nil
}

func (m *memFS) Remove(p string) error {
	if err := m.step(p); err != nil {
		return err
	}
	if _, ok := m.files[p]; !ok {
		return fmt.Errorf("remove %s: %w", p, fs.ErrNotExist)
	}
	delete(m.files, p)
	return nil
}

func trial() Trial {
	return Trial{Try: Duration(2 * time.Minute), AutoConfirm: true, Management: []string{"10.0.2.15"},
		Applied: time.Date(2026, 12, 5, 16, 0, 0, 0, time.UTC), Source: "new.yaml"}
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    *Trial
		want Action
	}{
		{"no record", nil, None},
		{"pending, not booted", &Trial{State: Pending}, Run},
		{"pending, booted once", &Trial{State: Pending, Boots: 1}, Revert},
		{"pending, booted often", &Trial{State: Pending, Boots: 7}, Revert},
		{"confirmed", &Trial{State: Confirmed, Boots: 1}, Clean},
		{"unknown state", &Trial{State: "bogus"}, Clean},
	} {
		if got := Decide(tc.t); got != tc.want {
			t.Errorf("%s: Decide = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestLifecycle: begin, the trial boot runs the new config, the next boot
// (timeout or power cut) returns to the old one; or a confirm keeps it.
func TestLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name        string
		before      map[string]string
		confirm     bool
		wantConfig  string // "" = no config.yaml
		wantActions []Action
	}{
		{"revert to previous", map[string]string{ConfigPath: "old"}, false, "old", []Action{Run, Revert, None}},
		{"revert to none", map[string]string{}, false, "", []Action{Run, Revert, None}},
		{"confirm keeps", map[string]string{ConfigPath: "old"}, true, "new", []Action{Run, None, None}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMem(tc.before)
			var cur []byte
			if v, ok := tc.before[ConfigPath]; ok {
				cur = []byte(v)
			}
			if err := Begin(m, cur, []byte("new"), trial()); err != nil {
				t.Fatal(err)
			}
			if got := m.files[ConfigPath]; got != "new" {
				t.Fatalf("after Begin config = %q, want new", got)
			}
			if err := Begin(m, []byte("new"), []byte("newer"), trial()); err == nil || !strings.Contains(err.Error(), "pending") {
				t.Errorf("second Begin: err = %v, want a pending trial refused", err)
			}
			var got []Action
			for boot := 0; boot < 3; boot++ {
				out, err := AtBoot(m)
				if err != nil {
					t.Fatalf("boot %d: %v", boot, err)
				}
				got = append(got, out.Action)
				if boot == 0 {
					if c := m.files[ConfigPath]; c != "new" {
						t.Fatalf("trial boot config = %q, want new", c)
					}
					if tc.confirm {
						if _, err := Confirm(m); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantActions) {
				t.Errorf("actions = %v, want %v", got, tc.wantActions)
			}
			c, ok := m.files[ConfigPath]
			if !ok {
				c = ""
			}
			if c != tc.wantConfig {
				t.Errorf("config = %q, want %q", c, tc.wantConfig)
			}
			for _, p := range []string{RecordPath, PreviousPath} {
				if _, ok := m.files[p]; ok {
					t.Errorf("%s left behind", p)
				}
			}
			if _, err := Confirm(m); !errors.Is(err, ErrNoTrial) {
				t.Errorf("Confirm after the end: err = %v, want ErrNoTrial", err)
			}
		})
	}
}

// TestPowerCuts cuts the power after every write of Begin, of the trial
// boot and of Confirm: whatever the moment, the boots after it end on the
// old config or (after a confirm's record write) the new one, with no trial
// left pending, and never on anything else.
func TestPowerCuts(t *testing.T) {
	for _, confirm := range []bool{false, true} {
		for cut := 0; cut < 12; cut++ {
			m := newMem(map[string]string{ConfigPath: "old"})
			m.cut = cut
			confirmedAt := -1
			func() {
				if err := Begin(m, []byte("old"), []byte("new"), trial()); err != nil {
					return
				}
				if _, err := AtBoot(m); err != nil {
					return
				}
				if confirm {
					writes := m.cut
					if _, err := Confirm(m); err == nil || writes != 0 {
						confirmedAt = cut
					}
				}
			}()
			m.cut = -1 // power back
			for boot := 0; boot < 3; boot++ {
				if _, err := AtBoot(m); err != nil {
					t.Fatalf("cut %d: boot after the cut: %v", cut, err)
				}
			}
			want := "old"
			if confirmedAt >= 0 {
				want = "new"
			}
			if got := m.files[ConfigPath]; got != want {
				t.Errorf("confirm=%v cut after %d writes: config = %q, want %q", confirm, cut, got, want)
			}
			if _, err := Load(m); !errors.Is(err, ErrNoTrial) {
				t.Errorf("confirm=%v cut after %d writes: a trial is still pending", confirm, cut)
			}
		}
	}
}

func TestUnreadableRecord(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"with previous", map[string]string{ConfigPath: "new", RecordPath: "{garbage", PreviousPath: "old"}, "old"},
		{"without previous", map[string]string{ConfigPath: "new", RecordPath: "{garbage"}, "new"},
	} {
		m := newMem(tc.files)
		if _, err := AtBoot(m); err == nil && tc.name == "without previous" {
			t.Errorf("%s: AtBoot reported no error for an unreadable record", tc.name)
		}
		if got := m.files[ConfigPath]; got != tc.want {
			t.Errorf("%s: config = %q, want %q", tc.name, got, tc.want)
		}
		if _, ok := m.files[RecordPath]; ok {
			t.Errorf("%s: the unreadable record is left", tc.name)
		}
	}
}

func TestBeginRefusesDurations(t *testing.T) {
	for _, d := range []time.Duration{0, time.Second, 25 * time.Hour} {
		tr := trial()
		tr.Try = Duration(d)
		m := newMem(map[string]string{ConfigPath: "old"})
		if err := Begin(m, []byte("old"), []byte("new"), tr); err == nil {
			t.Errorf("Begin with --try %s: no error", d)
		}
		if got := m.files[ConfigPath]; got != "old" {
			t.Errorf("Begin with --try %s changed the config to %q", d, got)
		}
	}
}

func TestReachable(t *testing.T) {
	tr := trial()
	for _, tc := range []struct {
		addrs []string
		want  bool
	}{
		{[]string{"10.0.2.15"}, true},
		{[]string{"10.0.2.99", "10.0.2.15"}, true},
		{[]string{"10.0.2.99"}, false},
		{nil, false},
	} {
		if got, _ := tr.Reachable(tc.addrs); got != tc.want {
			t.Errorf("Reachable(%v) = %v, want %v", tc.addrs, got, tc.want)
		}
	}
}

func TestChanges(t *testing.T) {
	load := func(y string) cloudconfig.Config { return cloudconfig.LoadFile("c.yaml", []byte(y)).Config }
	for _, tc := range []struct {
		name, before, after string
		want                []string // lines the diff must hold; nil: no change
	}{
		{"same", "hostname: a\n", "hostname: a\n", nil},
		{"same, other spelling", "hostname: a\nk3os:\n  dns_nameservers: [1.1.1.1]\n", "hostname: a\nk3os:\n  dns_nameservers:\n  - 1.1.1.1\n", nil},
		{"hostname", "hostname: a\n", "hostname: b\n", []string{"-hostname: a", "+hostname: b"}},
		{"static address", "hostname: a\n",
			"hostname: a\nkeso:\n  network:\n    interfaces:\n    - name: eth0\n      addresses: [10.0.2.99/24]\n",
			[]string{"+      - name: eth0", "+          - 10.0.2.99/24"}},
	} {
		got, err := Changes(load(tc.before), load(tc.after))
		if err != nil {
			t.Fatal(err)
		}
		checkDiff(t, tc.name, got, tc.want)
	}
}

// checkDiff: the diff holds every wanted line; nil wants no diff at all.
func checkDiff(t *testing.T, name, got string, want []string) {
	t.Helper()
	if want == nil && got != "" {
		t.Errorf("%s: changes %q, want none", name, got)
	}
	for _, w := range want {
		if !strings.Contains(got, w+"\n") {
			t.Errorf("%s: changes lack %q:\n%s", name, w, got)
		}
	}
}

func TestLocalChanges(t *testing.T) {
	defaults := cloudconfig.Source{Name: datasource.DefaultsPath, Data: []byte("hostname: image\n")}
	for _, tc := range []struct {
		name  string
		local []cloudconfig.Source
		next  string
		want  []string // lines of the diff; nil: no change
	}{
		{"replaces config.yaml", []cloudconfig.Source{defaults, {Name: ConfigPath, Data: []byte("hostname: a\n")}}, "hostname: b\n",
			[]string{"-hostname: a", "+hostname: b"}},
		{"none yet: after the defaults", []cloudconfig.Source{defaults}, "hostname: b\n", []string{"-hostname: image", "+hostname: b"}},
		{"config.d still wins", []cloudconfig.Source{defaults, {Name: ConfigPath, Data: []byte("hostname: a\n")},
			{Name: datasource.StateConfigDir + "/10.yaml", Data: []byte("hostname: d\n")}}, "hostname: b\n", nil},
		{"the same", []cloudconfig.Source{{Name: ConfigPath, Data: []byte("hostname: a\n")}}, "hostname: a\n", nil},
	} {
		got, err := LocalChanges(tc.local, []byte(tc.next))
		if err != nil {
			t.Fatal(err)
		}
		checkDiff(t, tc.name, got, tc.want)
	}
}
