package rack

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/keso-os/keso/pkg/image/netboot"
)

const (
	macA = "52-54-00-00-00-0a"
	macB = "52-54-00-00-00-0b"
	uuid = "9f6b3c1e-1111-2222-3333-444455556666"
)

var machines = fstest.MapFS{
	"default.yaml":                    {Data: []byte("hostname: ${hostname}\nk3os:\n  token: shared\n  labels:\n    mac: \"${mac}\"\n")},
	"machines/52-54-00-00-00-0a.yaml": {Data: []byte("# rack A\nnetboot:\n  mode: install\n  device: /dev/vda\n  hostname: rack-a\n\nhostname: ${hostname}\nwrite_files:\n  - path: /x\n    content: \"$${HOME} ${HOME} ${arch}\"\n")},
	"machines/" + uuid + ".yaml":      {Data: []byte("hostname: by-uuid\nnetboot: {mode: local}\n")},
	"machines/52-54-00-00-00-0c.yaml": {Data: []byte("netboot:\n  mode: sideways\n")},
	"machines/52-54-00-00-00-0d.yaml": {Data: []byte("netboot:\n  mode: install\n")},
	"machines/52-54-00-00-00-0e.yaml": {Data: []byte("- a list\n")},
}

func TestLookup(t *testing.T) {
	tests := []struct {
		mac, uuid string
		want      Machine
	}{
		{"52:54:00:00:00:0A", "", Machine{MAC: macA, Hostname: "rack-a", Mode: Install, Device: "/dev/vda", File: "machines/52-54-00-00-00-0a.yaml",
			Config: []byte("# rack A\n\n\n\n\n\nhostname: rack-a\nwrite_files:\n  - path: /x\n    content: \"${HOME} ${HOME} amd64\"\n")}},
		{macB, strings.ToUpper(uuid), Machine{MAC: macB, UUID: uuid, Hostname: "keso-00000b", Mode: Local, File: "machines/" + uuid + ".yaml",
			Config: []byte("hostname: by-uuid\n\n")}},
		{macB, "../../etc/passwd", Machine{MAC: macB, Hostname: "keso-00000b", Mode: Live, File: "default.yaml",
			Config: []byte("hostname: keso-00000b\nk3os:\n  token: shared\n  labels:\n    mac: \"52-54-00-00-00-0b\"\n")}},
	}
	for _, tt := range tests {
		got, err := Lookup(machines, tt.mac, tt.uuid, "amd64")
		if err != nil {
			t.Errorf("Lookup(%s, %q): %v", tt.mac, tt.uuid, err)
			continue
		}
		if string(got.Config) != string(tt.want.Config) {
			t.Errorf("Lookup(%s, %q) config =\n%q\nwant\n%q", tt.mac, tt.uuid, got.Config, tt.want.Config)
		}
		got.Config, tt.want.Config = nil, nil
		if got.MAC != tt.want.MAC || got.UUID != tt.want.UUID || got.Hostname != tt.want.Hostname || got.Mode != tt.want.Mode || got.Device != tt.want.Device || got.File != tt.want.File {
			t.Errorf("Lookup(%s, %q) = %+v, want %+v", tt.mac, tt.uuid, got, tt.want)
		}
	}
	for _, bad := range []struct{ mac, want string }{
		{"52-54-00-00-00-0c", `netboot.mode "sideways": expected live, install or local`},
		{"52-54-00-00-00-0d", "needs netboot.device"},
		{"52-54-00-00-00-0e", "expected a YAML mapping"},
		{"../default", "is not an Ethernet MAC address"},
		{"52-54-00-00-00", "is not an Ethernet MAC address"},
	} {
		if _, err := Lookup(machines, bad.mac, "", "amd64"); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Lookup(%s) error = %v, want one with %q", bad.mac, err, bad.want)
		}
	}
	if _, err := Lookup(fstest.MapFS{}, macA, "", "amd64"); err == nil || !strings.Contains(err.Error(), "write a default.yaml") {
		t.Errorf("Lookup with no files: %v, want one asking for default.yaml", err)
	}
}

var arch = Arch{Name: "amd64", Dir: "amd64/netboot", RootSHA256: "ab12", Cmdline: "console=ttyS0,115200 panic=10"}

func TestMachineScript(t *testing.T) {
	base := "http://10.77.0.1:8080"
	tests := []struct {
		m        Machine
		platform string
		want     []string
		not      []string
	}{
		{Machine{MAC: macB, Hostname: "b", Mode: Live, File: "default.yaml"}, "pcbios",
			[]string{"kernel http://10.77.0.1:8080/m/52-54-00-00-00-0b/amd64/vmlinuz keso.root=http://10.77.0.1:8080/m/52-54-00-00-00-0b/amd64/rootfs.squashfs keso.root_sha256=ab12 console=ttyS0,115200 panic=10 keso.config_url=http://10.77.0.1:8080/m/52-54-00-00-00-0b/amd64/config keso.report_url=http://10.77.0.1:8080/m/52-54-00-00-00-0b/report\n",
				"initrd http://10.77.0.1:8080/m/52-54-00-00-00-0b/amd64/initrd\n", "boot\n"},
			[]string{"install", "initrd=initrd", "sanboot"}},
		{Machine{MAC: macA, Hostname: "a", Mode: Install, Device: "/dev/vda"}, "efi",
			[]string{" keso.install.device=/dev/vda keso.install.silent initrd=initrd\n"}, []string{"sanboot"}},
		{Machine{MAC: macB, UUID: uuid, Hostname: "b", Mode: Live}, "pcbios",
			[]string{" keso.config_url=http://10.77.0.1:8080/m/52-54-00-00-00-0b/amd64/config?uuid=" + uuid + " "}, nil},
		{Machine{MAC: macA, Hostname: "a", Mode: Local}, "efi",
			[]string{"iseq ${platform} efi && exit 1 ||\n", "sanboot --no-describe --drive 0x80"}, []string{"kernel", "config_url"}},
	}
	for _, tt := range tests {
		got := string(MachineScript(base, tt.m, arch, tt.platform))
		if !strings.HasPrefix(got, "#!ipxe\n") {
			t.Errorf("%s script does not start with #!ipxe", tt.m.Mode)
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s/%s script lacks %q:\n%s", tt.m.Mode, tt.platform, w, got)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(got, n) {
				t.Errorf("%s/%s script has %q:\n%s", tt.m.Mode, tt.platform, n, got)
			}
		}
	}
	if got := string(ChainScript(base)); !strings.Contains(got, "chain http://10.77.0.1:8080/m/${netX/mac:hexhyp}/boot.ipxe?arch=${buildarch}&platform=${platform}&uuid=${uuid}\n") {
		t.Errorf("chain script:\n%s", got)
	}
}

func TestLoadArches(t *testing.T) {
	script := netboot.Script(netboot.DefaultBase, "ab12", "console=ttyS0,115200 panic=10")
	fsys := fstest.MapFS{
		"amd64/netboot/boot.ipxe": {Data: script}, "amd64/netboot/vmlinuz": {}, "amd64/netboot/initrd": {}, "amd64/netboot/rootfs.squashfs": {},
	}
	got, err := LoadArches(fsys)
	if err != nil || len(got) != 1 || got["amd64"] != arch {
		t.Errorf("LoadArches = %+v, %v; want amd64 only: %+v", got, err, arch)
	}
	delete(fsys, "amd64/netboot/initrd")
	if _, err := LoadArches(fsys); err == nil || !strings.Contains(err.Error(), "no initrd") {
		t.Errorf("LoadArches without initrd: %v", err)
	}
	if _, err := LoadArches(fstest.MapFS{}); err == nil || !strings.Contains(err.Error(), "keso-build's output folder") {
		t.Errorf("LoadArches of an empty folder: %v", err)
	}
}

type neighbors map[string]string

func (n neighbors) MAC(ip string) (string, bool) { m, ok := n[ip]; return m, ok }

func TestServer(t *testing.T) {
	state, err := OpenState(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	art := fstest.MapFS{"amd64/netboot/vmlinuz": {Data: []byte("KERNEL")}, "amd64/netboot/initrd": {Data: []byte("INITRD")}, "amd64/netboot/rootfs.squashfs": {Data: []byte("ROOTFS-0123456789")}}
	nb := neighbors{"127.0.0.1": macA, "127.0.0.2": macB}
	s := &Server{Base: "http://srv", Machines: machines, Artifacts: art, Arches: map[string]Arch{"amd64": arch}, State: state, Neighbors: nb}
	do := func(from, method, path, body string, hdr ...string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = from + ":40000"
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	steps := []struct {
		method, path, body string
		hdr                []string
		code               int
		want               string
		from               string // the client's address; default 127.0.0.1 (machine A)
	}{
		{"GET", "/ipxe", "", nil, 200, "chain http://srv/m/", ""},
		{"GET", "/m/52-54-00-00-00-0a/boot.ipxe?arch=x86_64&platform=efi", "", nil, 200, "keso.install.device=/dev/vda", ""},
		{"GET", "/m/52-54-00-00-00-0a/boot.ipxe?arch=riscv64", "", nil, 404, "no netboot build", ""},
		{"GET", "/m/52-54-00-00-00-0a/amd64/vmlinuz", "", nil, 200, "KERNEL", ""},
		{"GET", "/m/52-54-00-00-00-0a/amd64/rootfs.squashfs", "", []string{"Range", "bytes=7-"}, 206, "0123456789", ""},
		{"GET", "/m/52-54-00-00-00-0a/amd64/../../../etc/passwd", "", nil, 404, "", ""},
		{"GET", "/m/52-54-00-00-00-0a/amd64/config", "", nil, 200, "hostname: rack-a\n", ""},
		{"GET", "/m/52-54-00-00-00-0a/amd64/config", "", nil, 200, `content: "${HOME} ${HOME} amd64"`, ""},
		{"GET", "/m/52-54-00-00-00-0a/riscv64/config", "", nil, 404, "", ""},
		{"GET", "/m/52-54-00-00-00-0b/amd64/config", "", nil, 403, "the neighbour table has 52-54-00-00-00-0a", ""},
		{"GET", "/m/52-54-00-00-00-0b/amd64/config?uuid=" + uuid, "", nil, 200, "hostname: by-uuid\n", "127.0.0.2"},
		{"GET", "/m/52-54-00-00-00-0b/amd64/config", "", nil, 200, "hostname: keso-00000b\n", "127.0.0.2"},
		{"POST", "/m/52-54-00-00-00-0a/report", `{"step": "rm -rf"}`, nil, 400, "expected", ""},
		{"POST", "/m/52-54-00-00-00-0a/report", `{"step": "installed", "detail": "installed to /dev/vda"}`, nil, 200, "", ""},
		{"GET", "/m/52-54-00-00-00-0a/boot.ipxe?arch=x86_64&platform=efi", "", nil, 200, "exit 1", ""},
		{"POST", "/m/52-54-00-00-00-0a/report/log", "console line\n", nil, 200, "", ""},
		{"POST", "/m/52-54-00-00-00-0b/report/log", "not mine\n", nil, 403, "", ""},
	}
	for _, st := range steps {
		from := st.from
		if from == "" {
			from = "127.0.0.1"
		}
		code, body := do(from, st.method, st.path, st.body, st.hdr...)
		if code != st.code || !strings.Contains(body, st.want) {
			t.Errorf("%s %s = %d %q, want %d with %q", st.method, st.path, code, clip(body, 300), st.code, st.want)
		}
	}
	if log, err := os.ReadFile(state.LogPath(macA)); err != nil || string(log) != "console line\n" {
		t.Errorf("saved log = %q, %v", log, err)
	}
	if _, err := os.Stat(state.LogPath(macB)); err == nil {
		t.Errorf("a refused log was saved")
	}
	events, err := ReadEvents(state.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.MAC+" "+e.Step)
	}
	want := []string{macA + " ipxe", macA + " ipxe", macA + " refused", macA + " kernel", macA + " root", macA + " config", macA + " config", macB + " refused", macB + " config", macB + " config",
		macA + " installed", macA + " ipxe", macA + " log", macB + " refused"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !state.Installed(macA) || state.Installed(macB) {
		t.Errorf("installed: a %v b %v, want a only", state.Installed(macA), state.Installed(macB))
	}
}

func TestStatus(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC)
	ev := []Event{
		{Time: t0, MAC: macA, Step: StepDHCP, Detail: "proxy offer"},
		{Time: t0.Add(time.Second), MAC: macB, Step: StepDHCP},
		{Time: t0.Add(2 * time.Second), IP: "10.0.0.9", Step: StepIPXE, Detail: "tftp"},
		{Time: t0.Add(90 * time.Second), MAC: macA, Step: StepK3s, Detail: "k3s started"},
	}
	var buf bytes.Buffer
	for _, e := range ev {
		buf.WriteString(mustJSON(t, e) + "\n")
	}
	buf.WriteString("{\"time\": \"cut\n")
	parsed, err := parseEvents(&buf)
	if err != nil || len(parsed) != len(ev) {
		t.Fatalf("parseEvents = %d events, %v; want %d", len(parsed), err, len(ev))
	}
	ms := Summarize(parsed)
	var out bytes.Buffer
	Format(&out, ms)
	for _, w := range []string{
		macA + ": 2 events, last k3s at 2026-12-05T13:01:30Z; k3s started 1m30s after its first request\n",
		"       +0.0s  dhcp      proxy offer\n",
		"      +90.0s  k3s       k3s started\n",
		"?: 1 events, last ipxe",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("status lacks %q:\n%s", w, out.String())
		}
	}
}

func mustJSON(t *testing.T, e Event) string {
	t.Helper()
	var b bytes.Buffer
	s := &State{Dir: t.TempDir()}
	s.Record(e)
	data, err := os.ReadFile(filepath.Join(s.Dir, EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	b.Write(bytes.TrimSpace(data))
	return b.String()
}

func TestParseARP(t *testing.T) {
	table := []byte("IP address       HW type     Flags       HW address            Mask     Device\n" +
		"10.77.0.101      0x1         0x2         52:54:00:00:00:0a     *        br0\n" +
		"10.77.0.102      0x1         0x0         00:00:00:00:00:00     *        br0\n")
	tests := []struct {
		ip, want string
		ok       bool
	}{
		{"10.77.0.101", macA, true},
		{"10.77.0.102", "", false},
		{"10.77.0.1", "", false},
	}
	for _, tt := range tests {
		got, ok := parseARP(table, tt.ip)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseARP(%s) = %q, %v; want %q, %v", tt.ip, got, ok, tt.want, tt.ok)
		}
	}
	_ = http.StatusOK
}
