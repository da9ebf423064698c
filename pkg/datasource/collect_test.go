package datasource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
)

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name        string
		ds          []string
		url, seed   string
		want        []Step
		wantProblem []string // paths of problems
	}{
		{name: "default", want: []Step{{Name: CDROM}, {Name: ConfigDrv}}},
		{name: "default+url", url: "http://h/x",
			want: []Step{{Name: CDROM}, {Name: ConfigDrv}, {Name: HTTPName, Path: "keso.config_url", URL: "http://h/x"}}},
		{name: "default+seed", seed: "http://h/seed/",
			want: []Step{{Name: CDROM}, {Name: ConfigDrv}, {Name: NoCloudNet, URL: "http://h/seed/"}}},
		{name: "aliases-and-duplicates", ds: []string{"aws", "nocloud", "ec2", "cdrom", "state"},
			want: []Step{{Name: EC2Name, Path: "keso.data_sources[0]"}, {Name: CDROM, Path: "keso.data_sources[1]"}}},
		{name: "http-listed-first", ds: []string{"http", "cdrom"}, url: "https://h/x",
			want: []Step{{Name: HTTPName, Path: "keso.config_url", URL: "https://h/x"}, {Name: CDROM, Path: "keso.data_sources[1]"}}},
		{name: "http-without-url", ds: []string{"cdrom", "http"},
			want: []Step{{Name: CDROM, Path: "keso.data_sources[0]"}}, wantProblem: []string{"keso.data_sources[1]"}},
		{name: "unknown", ds: []string{"azure", "openstack"},
			want: []Step{{Name: OpenStack, Path: "keso.data_sources[1]"}}, wantProblem: []string{"keso.data_sources[0]"}},
		{name: "metadata-services", ds: []string{"GCP", "ec2", "hetzner", "digitalocean", "vultr", "scaleway", "equinixmetal", "packet", "equinix"},
			want: []Step{{Name: GCPName, Path: "keso.data_sources[0]"}, {Name: EC2Name, Path: "keso.data_sources[1]"},
				{Name: HetznerName, Path: "keso.data_sources[2]"}, {Name: DigitalOceanName, Path: "keso.data_sources[3]"},
				{Name: VultrName, Path: "keso.data_sources[4]"}, {Name: ScalewayName, Path: "keso.data_sources[5]"},
				{Name: PacketName, Path: "keso.data_sources[6]"}}},
		{name: "state-only", ds: []string{"state"}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, problems := Plan(tc.ds, tc.url, tc.seed)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("steps:\n got %+v\nwant %+v", got, tc.want)
			}
			var paths []string
			for _, p := range problems {
				paths = append(paths, p.Path)
			}
			if !reflect.DeepEqual(paths, tc.wantProblem) {
				t.Errorf("problems at %q, want %q (%v)", paths, tc.wantProblem, problems)
			}
		})
	}
}

// TestNodeFetchers: every name data_sources accepts is a step Plan knows,
// and a node has a fetcher for it.
func TestNodeFetchers(t *testing.T) {
	byName := NodeFetchers(t.TempDir()).ByName
	for _, n := range cloudconfig.DataSources {
		steps, problems := Plan([]string{n}, "http://h/x", "")
		if len(problems) != 0 {
			t.Errorf("Plan(%q): %v", n, problems)
		}
		for _, st := range steps {
			if st.Name != HTTPName && byName[st.Name] == nil {
				t.Errorf("data_sources: [%s]: no fetcher for step %s on a node", n, st.Name)
			}
		}
	}
}

// stubFetchers records which datasources were asked.
type stubFetchers struct {
	mu     sync.Mutex
	called []string
}

func (s *stubFetchers) record(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.called = append(s.called, name)
}

func (s *stubFetchers) fetcher(name string, found Found, err error) Fetcher {
	return FetcherFunc(func(ctx context.Context) (Found, error) {
		s.record(name)
		return found, err
	})
}

func (s *stubFetchers) calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.called...)
}

// node writes the local config files under a temp root.
func localRoot(t *testing.T, files map[string]string) host.FS {
	root := t.TempDir()
	for p, c := range files {
		writeFile(t, filepath.Join(root, p), c)
	}
	return host.FS{Root: root}
}

var cidataFound = Found{
	Origin:       "cidata:/dev/sr1",
	UserData:     []byte("#cloud-config\nhostname: from-user-data\nkeso:\n  labels:\n    from: cidata\n"),
	UserDataName: "cidata:/dev/sr1:user-data",
	Meta:         Meta{InstanceID: "iid-1", Hostname: "from-meta", PublicKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMeta m@x"}},
	MetaName:     "cidata:/dev/sr1:meta-data",
}

func names(srcs []cloudconfig.Source) []string {
	var out []string
	for _, s := range srcs {
		out = append(out, s.Name)
	}
	return out
}

func TestCollectDefaultOrder(t *testing.T) {
	files := localRoot(t, map[string]string{
		DefaultsPath:                      "hostname: keso\nkeso:\n  labels:\n    from: defaults\n    image: keso\n",
		StateConfigPath:                   "keso:\n  labels:\n    from: state\n",
		StateConfigDir + "/20-b.yaml":     "keso:\n  labels:\n    b: \"1\"\n",
		StateConfigDir + "/10-a.yml":      "keso:\n  labels:\n    a: \"1\"\n",
		StateConfigDir + "/README":        "not config",
		StateConfigDir + "/.hidden.yaml":  "hostname: hidden\n",
		StateConfigDir + "/sub.yaml/x":    "a directory named like a config file",
		"/usr/share/keso/unrelated.yaml":  "hostname: no\n",
		"/keso/state/keso/config.yaml.bk": "hostname: no\n",
	})
	stubs := &stubFetchers{}
	var log bytes.Buffer
	got := Collect(context.Background(), Inputs{
		Files:   files,
		Cmdline: "console=ttyS0 keso.k3s.role=agent keso.server_url=https://10.0.0.1:6443",
		Fetchers: Fetchers{ByName: map[string]Fetcher{
			CDROM:     stubs.fetcher(CDROM, cidataFound, nil),
			ConfigDrv: stubs.fetcher(ConfigDrv, Found{}, fmt.Errorf("no volume labelled config-2: %w", ErrNotFound)),
		}},
		Log: &log,
	})
	wantNames := []string{DefaultsPath, StateConfigPath, StateConfigDir + "/10-a.yml", StateConfigDir + "/20-b.yaml",
		"cidata:/dev/sr1:meta-data", "cidata:/dev/sr1:user-data", CmdlineName}
	if !reflect.DeepEqual(names(got.Sources), wantNames) {
		t.Errorf("source order:\n got %q\nwant %q", names(got.Sources), wantNames)
	}
	if c := stubs.calls(); !reflect.DeepEqual(c, []string{CDROM}) {
		t.Errorf("datasources asked: %q; want only cdrom (the first that finds something wins)", c)
	}
	if !reflect.DeepEqual(got.Meta, cidataFound.Meta) {
		t.Errorf("Meta = %+v", got.Meta)
	}
	if !got.Report.OK() {
		t.Errorf("failures: %+v", got.Report.Failures)
	}
	for _, want := range []string{
		"keso: datasource: found cidata:/dev/sr1 (user-data 72 bytes (cloud-config), instance-id iid-1, hostname from-meta, 1 public key(s))",
		"keso: datasource: skip configdrive (already configured by cidata:/dev/sr1)",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("console log lacks %q:\n%s", want, log.String())
		}
	}

	// The merge: user-data's hostname beats meta-data's; meta-data's keys
	// arrive; labels accumulate across every layer; the command line wins.
	res := cloudconfig.Load(got.Sources...)
	if !res.Valid() {
		t.Fatalf("diagnostics: %v", res.Diagnostics)
	}
	c := res.Config
	if c.Hostname != "from-user-data" {
		t.Errorf("hostname = %q, want user-data's", c.Hostname)
	}
	if !reflect.DeepEqual(c.SSHAuthorizedKeys, cidataFound.Meta.PublicKeys) {
		t.Errorf("ssh keys = %q, want meta-data's", c.SSHAuthorizedKeys)
	}
	wantLabels := map[string]string{"from": "cidata", "image": "keso", "a": "1", "b": "1"}
	if !reflect.DeepEqual(c.Keso.Labels, wantLabels) {
		t.Errorf("labels = %v, want %v", c.Keso.Labels, wantLabels)
	}
	if c.Keso.K3s == nil || c.Keso.K3s.Role != "agent" {
		t.Errorf("k3s role from the command line not applied: %+v", c.Keso.K3s)
	}
}

func TestCollectMetaHostnameWhenUserDataHasNone(t *testing.T) {
	f := cidataFound
	f.UserData = []byte("#cloud-config\nkeso:\n  labels:\n    x: \"1\"\n")
	got := Collect(context.Background(), Inputs{
		Files:    localRoot(t, map[string]string{DefaultsPath: "hostname: keso\n"}),
		Fetchers: Fetchers{ByName: map[string]Fetcher{CDROM: FetcherFunc(func(context.Context) (Found, error) { return f, nil })}},
	})
	if h := cloudconfig.Load(got.Sources...).Config.Hostname; h != "from-meta" {
		t.Errorf("hostname = %q, want meta-data's local-hostname over the image default", h)
	}
}

// TestCollectTwoStep: data_sources and config_url come from the local
// config (state partition, command line) and decide what is asked.
func TestCollectTwoStep(t *testing.T) {
	stubs := &stubFetchers{}
	var gotURL string
	got := Collect(context.Background(), Inputs{
		Files:   localRoot(t, map[string]string{StateConfigPath: "k3os:\n  data_sources:\n    - aws\n"}),
		Cmdline: "keso.config_url=http://10.0.0.1/node.yaml",
		Fetchers: Fetchers{
			ByName: map[string]Fetcher{
				CDROM:   stubs.fetcher(CDROM, cidataFound, nil),
				EC2Name: stubs.fetcher(EC2Name, Found{Origin: "ec2:x", UserData: []byte("hostname: ec2\n"), UserDataName: "x/latest/user-data"}, nil),
			},
			HTTP: func(u string) Fetcher {
				gotURL = u
				return stubs.fetcher(HTTPName, Found{Origin: u, UserData: []byte("hostname: http\n"), UserDataName: u}, nil)
			},
		},
	})
	if c := stubs.calls(); !reflect.DeepEqual(c, []string{EC2Name, HTTPName}) {
		t.Errorf("asked %q; want ec2 (from the state config) then http (config_url)", c)
	}
	if gotURL != "http://10.0.0.1/node.yaml" {
		t.Errorf("http URL = %q", gotURL)
	}
	want := []string{StateConfigPath, "x/latest/user-data", "http://10.0.0.1/node.yaml", CmdlineName}
	if !reflect.DeepEqual(names(got.Sources), want) {
		t.Errorf("sources %q, want %q", names(got.Sources), want)
	}
	if h := cloudconfig.Load(got.Sources...).Config.Hostname; h != "http" {
		t.Errorf("hostname = %q; the config_url's user-data comes after the provider's", h)
	}
}

// TestCollectBadInput: an unreachable config_url costs at most the budget
// and is reported at the command line's position; an unknown datasource is
// reported at its line; a YAML error in user-data is reported by
// cloudconfig under the source's name; the rest still applies.
func TestCollectBadInput(t *testing.T) {
	bad := cidataFound
	bad.UserData = []byte("#cloud-config\nhostname: [unclosed\n")
	var log bytes.Buffer
	start := time.Now()
	got := Collect(context.Background(), Inputs{
		Files:   localRoot(t, map[string]string{StateConfigPath: "hostname: from-state\nkeso:\n  data_sources: [gcp, cdrom]\n"}),
		Cmdline: "quiet keso.config_url=http://192.0.2.1/never.yaml",
		Fetchers: Fetchers{
			ByName: map[string]Fetcher{CDROM: FetcherFunc(func(context.Context) (Found, error) { return bad, nil })},
			HTTP: func(u string) Fetcher {
				return FetcherFunc(func(ctx context.Context) (Found, error) {
					<-ctx.Done() // a server that never answers
					return Found{}, fmt.Errorf("GET %s: gave up: %w", u, ctx.Err())
				})
			},
		},
		Budget: 200 * time.Millisecond,
		Log:    &log,
	})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Collect took %s with a 200ms budget", d)
	}
	fails := map[string]string{}
	for _, f := range got.Report.Failures {
		fails[f.Path] = f.Where
	}
	wantFails := map[string]string{
		"keso.data_sources[0]": StateConfigPath + ":3:18",
		"keso.config_url":      CmdlineName + ":1:7",
	}
	if !reflect.DeepEqual(fails, wantFails) {
		t.Errorf("failures at %v, want %v\n%s", fails, wantFails, log.String())
	}
	if !strings.Contains(log.String(), "gcp") || !strings.Contains(log.String(), "never.yaml") {
		t.Errorf("console log should name the bad datasource and the URL:\n%s", log.String())
	}
	res := cloudconfig.Load(got.Sources...)
	var syntax *cloudconfig.Diagnostic
	for i, d := range res.Diagnostics {
		if d.File == "cidata:/dev/sr1:user-data" && strings.Contains(d.Message, "YAML syntax") {
			syntax = &res.Diagnostics[i]
		}
	}
	if syntax == nil {
		t.Errorf("no YAML syntax diagnostic for cidata:/dev/sr1:user-data; got %v", res.Diagnostics)
	}
	// meta-data's hostname still applies (the broken user-data set nothing).
	if res.Config.Hostname != "from-meta" {
		t.Errorf("hostname = %q, want the meta-data's", res.Config.Hostname)
	}
}

func TestCollectPartialAndUnavailable(t *testing.T) {
	partial := Found{Origin: "config-2:/dev/vdb", UserData: []byte("hostname: cd\n"), UserDataName: "config-2:/dev/vdb:openstack/latest/user_data"}
	got := Collect(context.Background(), Inputs{
		Files:   localRoot(t, nil),
		Cmdline: "keso.data_sources=ec2,configdrive",
		Fetchers: Fetchers{ByName: map[string]Fetcher{
			ConfigDrv: FetcherFunc(func(context.Context) (Found, error) {
				return partial, errors.New("meta_data.json: unexpected end of JSON input")
			}),
		}},
	})
	if want := []string{partial.UserDataName, CmdlineName}; !reflect.DeepEqual(names(got.Sources), want) {
		t.Errorf("sources %q, want %q (what was read is used)", names(got.Sources), want)
	}
	var msgs []string
	for _, f := range got.Report.Failures {
		msgs = append(msgs, f.Path+": "+f.Err)
	}
	if len(msgs) != 2 || !strings.Contains(msgs[0], "ec2 is not available") || !strings.Contains(msgs[1], "meta_data.json") {
		t.Errorf("failures = %q", msgs)
	}
}

// TestCollectOnNode runs the real fetchers on a fake node whose CD drive
// holds a cloud-localds seed: the path the system stage takes on a device.
func TestCollectOnNode(t *testing.T) {
	needTool(t, "cloud-localds", "genisoimage")
	dir := t.TempDir()
	ud, md := filepath.Join(dir, "ud"), filepath.Join(dir, "md")
	writeFile(t, ud, seedUserData)
	writeFile(t, md, seedMetaData)
	img := filepath.Join(dir, "seed.iso")
	run(t, "cloud-localds", img, ud, md)
	node := newFakeNode(t)
	node.attach("sda", filepath.Join(dir, "md"))
	node.attach("sr0", img)
	writeFile(t, filepath.Join(node.root, DefaultsPath), "hostname: keso\n")
	var log bytes.Buffer
	got := Collect(context.Background(), Inputs{
		Files:    host.FS{Root: node.root},
		Cmdline:  "console=ttyS0",
		Fetchers: NodeFetchers(node.root),
		Log:      &log,
	})
	want := []string{DefaultsPath, "cidata:/dev/sr0:meta-data", "cidata:/dev/sr0:user-data", CmdlineName}
	if !reflect.DeepEqual(names(got.Sources), want) {
		t.Errorf("sources %q, want %q\n%s", names(got.Sources), want, log.String())
	}
	res := cloudconfig.Load(got.Sources...)
	if !res.Valid() {
		t.Fatalf("diagnostics: %v", res.Diagnostics)
	}
	if res.Config.Hostname != "from-user-data" || res.Config.Keso.Sysctl["net.ipv4.ip_forward"] != "1" {
		t.Errorf("config = hostname %q sysctl %v", res.Config.Hostname, res.Config.Keso.Sysctl)
	}
	if got.Meta.InstanceID != "iid-store-0042" {
		t.Errorf("instance-id = %q", got.Meta.InstanceID)
	}
	if !strings.Contains(log.String(), "keso: datasource: found cidata:/dev/sr0") {
		t.Errorf("log:\n%s", log.String())
	}
}

// TestCollectBeforeNetwork: the network hook runs once, only when a
// network datasource is about to be asked, and after the volume sources.
func TestCollectBeforeNetwork(t *testing.T) {
	notFound := func(name string, stubs *stubFetchers) Fetcher {
		return stubs.fetcher(name, Found{}, fmt.Errorf("nothing: %w", ErrNotFound))
	}
	for _, tc := range []struct {
		name, cmdline string
		want          []string
	}{
		{"volumes-only", "", []string{CDROM, ConfigDrv}},
		{"with-config-url", "keso.config_url=http://h/x.yaml", []string{CDROM, ConfigDrv, "network-up", HTTPName}},
		{"ec2-and-url", "keso.data_sources=ec2,cdrom keso.config_url=http://h/x.yaml", []string{"network-up", EC2Name, CDROM, HTTPName}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stubs := &stubFetchers{}
			got := Collect(context.Background(), Inputs{
				Files:   localRoot(t, nil),
				Cmdline: tc.cmdline,
				Fetchers: Fetchers{
					ByName: map[string]Fetcher{CDROM: notFound(CDROM, stubs), ConfigDrv: notFound(ConfigDrv, stubs), EC2Name: notFound(EC2Name, stubs)},
					HTTP:   func(u string) Fetcher { return notFound(HTTPName, stubs) },
				},
				BeforeNetwork: func(context.Context) error {
					stubs.record("network-up")
					return errors.New("no carrier on any link")
				},
			})
			if c := stubs.calls(); !reflect.DeepEqual(c, tc.want) {
				t.Errorf("calls %q, want %q", c, tc.want)
			}
			netFail := 0
			for _, f := range got.Report.Failures {
				if strings.Contains(f.Err, "no carrier") {
					netFail++
				}
			}
			if wantFail := map[bool]int{true: 1, false: 0}[len(tc.want) > 2]; netFail != wantFail {
				t.Errorf("network failures reported: %d, want %d (%+v)", netFail, wantFail, got.Report.Failures)
			}
		})
	}
}

func TestInstallConfig(t *testing.T) {
	files := localRoot(t, map[string]string{"/run/media/install.yaml": "hostname: installed\n"})
	for _, loc := range []string{"/run/media/install.yaml", "file:///run/media/install.yaml"} {
		b, name, err := InstallConfig(context.Background(), files, loc, nil, Retry{})
		if err != nil || string(b) != "hostname: installed\n" || name != "/run/media/install.yaml" {
			t.Errorf("InstallConfig(%q) = %q, %q, %v", loc, b, name, err)
		}
	}
	if _, _, err := InstallConfig(context.Background(), files, "/missing.yaml", nil, Retry{}); err == nil {
		t.Error("InstallConfig(missing file) = nil error")
	}
	if _, _, err := InstallConfig(context.Background(), files, "ftp://x/y", nil, Retry{}); err == nil {
		t.Error("InstallConfig(ftp://) = nil error")
	}
}
