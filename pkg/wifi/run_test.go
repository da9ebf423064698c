package wifi

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keso-os/keso/internal/testutil"
	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
)

// sysNet makes a /sys/class/net under root: name -> (ifindex, wireless).
func sysNet(t *testing.T, root string, links map[string]struct {
	index    string
	wireless bool
}) {
	t.Helper()
	for n, l := range links {
		d := filepath.Join(root, "sys/class/net", n)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "ifindex"), []byte(l.index+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if l.wireless {
			if err := os.MkdirAll(filepath.Join(d, "wireless"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestLinksKernelOrder(t *testing.T) {
	root := t.TempDir()
	sysNet(t, root, map[string]struct {
		index    string
		wireless bool
	}{"lo": {"1", false}, "wlan1": {"5", true}, "eth0": {"2", false}, "wlan0": {"4", true}})
	got, err := Links(host.FS{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, l := range got {
		w := ""
		if l.Wireless {
			w = "(w)"
		}
		s = append(s, l.Name+w)
	}
	if got, want := strings.Join(s, " "), "lo eth0 wlan0(w) wlan1(w)"; got != want {
		t.Errorf("Links = %q, want %q", got, want)
	}
}

// fakeStarter starts a real long-running process (sleep) in place of the
// supplicant and records the argv.
type fakeStarter struct {
	mu    sync.Mutex
	argvs [][]string
}

func (f *fakeStarter) StartService(argv, env []string, out io.Writer) (*exec.Cmd, error) {
	f.mu.Lock()
	f.argvs = append(f.argvs, argv)
	f.mu.Unlock()
	io.WriteString(out, "Successfully initialized wpa_supplicant\n")
	cmd := exec.Command("sleep", "60")
	return cmd, cmd.Start()
}

// fakeMods records module loads; missing fails.
type fakeMods struct {
	loaded  []string
	missing string
}

func (f *fakeMods) Load(name string) error {
	if name == f.missing {
		return errors.New("not in modules.dep")
	}
	f.loaded = append(f.loaded, name)
	return nil
}

// fakeCtl answers STATUS with the states in turn (the last one repeats).
type fakeCtl struct {
	mu     sync.Mutex
	states []string
	asked  int
}

func (f *fakeCtl) Request(ctx context.Context, iface, cmd string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cmd == "SCAN_RESULTS" {
		return "bssid / frequency / signal level / flags / ssid\n02:00:00:00:01:00\t2412\t-30\t[WPA2-PSK-CCMP][ESS]\tother\n", nil
	}
	if cmd != "STATUS" || iface != "wlan0" {
		return "", errors.New("unexpected request " + iface + " " + cmd)
	}
	i := min(f.asked, len(f.states)-1)
	f.asked++
	if f.states[i] == "" {
		return "", errors.New("connect: no such file or directory")
	}
	return "bssid=02:00:00:00:01:00\nssid=store\nkey_mgmt=SAE\nwpa_state=" + f.states[i] + "\n", nil
}

func wifiRoot(t *testing.T, withSupplicant bool) string {
	root := t.TempDir()
	sysNet(t, root, map[string]struct {
		index    string
		wireless bool
	}{"eth0": {"2", false}, "wlan0": {"3", true}})
	if withSupplicant {
		p := filepath.Join(root, Supplicant)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("ELF"), 0o755)
	}
	return root
}

func TestRunAssociates(t *testing.T) {
	root := wifiRoot(t, true)
	st := &fakeStarter{}
	ctl := &fakeCtl{states: []string{"", "SCANNING", "ASSOCIATING", "COMPLETED"}}
	// The recorder (this goroutine) and the supplicant's output (the
	// service's goroutine) write the log at once, as they do to the
	// console on a node: a bare bytes.Buffer would lose lines.
	var log testutil.LockedBuffer
	rec := phase.NewRecorder("wifi", &log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mods := &fakeMods{missing: "cmac"}
	res := Run(ctx, cfgWith(cloudconfig.Wifi{Name: "store", Passphrase: "correct horse"}), host.FS{Root: root}, st, ctl, mods, &log, Options{}, rec)
	rep := rec.Done()
	if !res.Associated || res.Interface != "wlan0" || res.SSID != "store" || res.Service == nil {
		t.Fatalf("Run = %+v, want associated on wlan0 with ssid store and a service", res)
	}
	if len(rep.Failures) != 0 {
		t.Errorf("failures: %+v", rep.Failures)
	}
	if got, want := strings.Join(mods.loaded, " "), "ctr ccm gcm ghash_generic"; got != want {
		t.Errorf("loaded modules %q, want %q", got, want)
	}
	conf, err := os.ReadFile(filepath.Join(root, ConfPath))
	if err != nil || !strings.Contains(string(conf), `psk="correct horse"`) {
		t.Errorf("config %s: %v\n%s", ConfPath, err, conf)
	}
	if fi, err := os.Stat(filepath.Join(root, ConfPath)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode = %v (%v), want 0600: it holds passphrases", fi.Mode().Perm(), err)
	}
	for _, want := range []string{"keso: wifi: write /run/keso/wpa_supplicant.conf (1 network(s): store)",
		"keso: wifi: start wpa_supplicant (wlan0)", "keso: wifi: Successfully initialized wpa_supplicant",
		"keso: wifi: skip crypto modules (cmac (not in modules.dep)",
		`keso: wifi: associated wlan0 (ssid "store", bssid 02:00:00:00:01:00, SAE`} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := res.Service.Stop(sctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.argvs) != 1 || strings.Join(st.argvs[0], " ") != "/usr/sbin/wpa_supplicant -i wlan0 -c /run/keso/wpa_supplicant.conf -D nl80211" {
		t.Errorf("started %v, want one wpa_supplicant on wlan0", st.argvs)
	}
}

func TestRunReportsNoAssociation(t *testing.T) {
	root := wifiRoot(t, true)
	rec := phase.NewRecorder("wifi", io.Discard, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := Run(ctx, cfgWith(cloudconfig.Wifi{Name: "store", Passphrase: "correct horse"}), host.FS{Root: root}, &fakeStarter{},
		&fakeCtl{states: []string{"SCANNING"}}, nil, io.Discard, Options{WaitAssociated: 600 * time.Millisecond}, rec)
	rep := rec.Done()
	if res.Associated || res.Service == nil {
		t.Errorf("Run = %+v, want not associated, supplicant running", res)
	}
	if len(rep.Failures) != 1 || !strings.Contains(rep.Failures[0].Err, "wlan0: not associated with store within 600ms (wpa_state=SCANNING; networks in range: \"other\" [WPA2-PSK-CCMP][ESS]); wpa_supplicant keeps trying") {
		t.Errorf("failures = %+v", rep.Failures)
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := res.Service.Stop(sctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func TestRunWithoutSupplicantOrRadio(t *testing.T) {
	for _, tc := range []struct {
		name     string
		root     func(t *testing.T) string
		cfg      cloudconfig.Config
		wantFail string
		wantSkip bool
	}{
		{"no wifi config", func(t *testing.T) string { return wifiRoot(t, true) }, cfgWith(), "", true},
		{"no supplicant in the image", func(t *testing.T) string { return wifiRoot(t, false) }, cfgWith(cloudconfig.Wifi{Name: "s"}), "/usr/sbin/wpa_supplicant is not in this image", false},
		{"no wireless link", func(t *testing.T) string {
			r := t.TempDir()
			sysNet(t, r, map[string]struct {
				index    string
				wireless bool
			}{"eth0": {"2", false}})
			return r
		}, cfgWith(cloudconfig.Wifi{Name: "s"}), "no wireless network interface (links seen: eth0)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := phase.NewRecorder("wifi", io.Discard, nil)
			st := &fakeStarter{}
			res := Run(context.Background(), tc.cfg, host.FS{Root: tc.root(t)}, st, &fakeCtl{states: []string{""}}, nil, io.Discard,
				Options{LinkSettle: 300 * time.Millisecond}, rec)
			rep := rec.Done()
			if res.Service != nil || len(st.argvs) != 0 {
				t.Errorf("a supplicant was started: %+v %v", res, st.argvs)
			}
			if got := rep.Skipped != ""; got != tc.wantSkip {
				t.Errorf("skipped = %q, want skipped %v", rep.Skipped, tc.wantSkip)
			}
			gotFail := ""
			if len(rep.Failures) > 0 {
				gotFail = rep.Failures[0].Err
			}
			if (tc.wantFail == "") != (gotFail == "") || !strings.Contains(gotFail, tc.wantFail) {
				t.Errorf("failures = %+v, want one containing %q", rep.Failures, tc.wantFail)
			}
		})
	}
}
