package cloudconfig

import (
	"reflect"
	"strings"
	"testing"
)

func TestMergeOrder(t *testing.T) {
	defaults := Source{Name: "defaults", Data: []byte(`
hostname: keso
ssh_authorized_keys: [github:default]
keso:
  ntp_servers: [0.pool.ntp.org, 1.pool.ntp.org]
  sysctl: {vm.swappiness: "0", kernel.panic: "10"}
  labels: {tier: edge}
  k3s: {role: server}
`)}
	state := Source{Name: "/keso/config.yaml", Data: []byte(`
k3os:
  ntp_servers: [ntp.store.lan]
  sysctl: {vm.swappiness: "10"}
  labels: {store: "42"}
`)}
	confd := Source{Name: "config.d/10-net.yaml", Data: []byte(`
keso:
  k3s: {server_url: "https://srv:6443"}
`)}
	userData := Source{Name: "cidata:user-data", Data: []byte("#cloud-config\nhostname: store-42\nssh_authorized_keys: [github:alice]\n")}
	cmd := Source{Name: "cmdline", Cmdline: true, Data: []byte("ro keso.k3s.role=agent keso.sysctl.kernel.panic=5 k3os.dns_nameservers=10.0.0.1,10.0.0.2 keso.slot=a")}

	r := Load(defaults, state, confd, userData, cmd)
	if len(r.Diagnostics) != 0 {
		t.Fatalf("diagnostics: %v", r.Diagnostics)
	}
	c := r.Config
	tests := []struct {
		name      string
		got, want any
	}{
		{"scalar: later wins", c.Hostname, "store-42"},
		{"list: later replaces", c.SSHAuthorizedKeys, []string{"github:alice"}},
		{"k3os block list replaces keso defaults", c.Keso.NTPServers, []string{"ntp.store.lan"}},
		{"map merges key by key", c.Keso.Sysctl, map[string]string{"vm.swappiness": "10", "kernel.panic": "5"}},
		{"labels merged", c.Keso.Labels, map[string]string{"tier": "edge", "store": "42"}},
		{"struct merges field by field", *c.Keso.K3s, K3s{Role: "agent", ServerURL: "https://srv:6443"}},
		{"cmdline list split on commas", c.Keso.DNSNameservers, []string{"10.0.0.1", "10.0.0.2"}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
	if got, want := r.Origins["hostname"], "cidata:user-data:2"; got != want {
		t.Errorf("origin of hostname = %q, want %q", got, want)
	}
	if got, want := r.Origins["keso.ntp_servers"], "/keso/config.yaml:3"; got != want {
		t.Errorf("origin of keso.ntp_servers = %q, want %q", got, want)
	}
}

func TestMergeNullKeepsEarlierValue(t *testing.T) {
	r := Load(Source{Name: "a", Data: []byte("hostname: a\nkeso:\n  password: p\n")}, Source{Name: "b", Data: []byte("hostname:\nkeso:\n")})
	if got, want := r.Config.Hostname, "a"; got != want {
		t.Errorf("hostname = %q, want %q", got, want)
	}
	if got, want := r.Config.Keso.Password, "p"; got != want {
		t.Errorf("password = %q, want %q", got, want)
	}
}

func TestMergeIsPure(t *testing.T) {
	a := Source{Name: "a", Data: []byte("keso:\n  labels: {x: \"1\"}\n")}
	b := Source{Name: "b", Data: []byte("keso:\n  labels: {y: \"2\"}\n")}
	first := Load(a, b).Config
	second := Load(a, b).Config
	if !reflect.DeepEqual(first, second) {
		t.Errorf("Load is not deterministic: %+v vs %+v", first, second)
	}
	if got := Load(a).Config.Keso.Labels; !reflect.DeepEqual(got, map[string]string{"x": "1"}) {
		t.Errorf("a alone = %v after merging it with b", got)
	}
}

func TestCmdline(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		check func(c Config) bool
		diags []string
	}{
		{"k3os password", "k3os.password=rancher", func(c Config) bool { return c.Keso.Password == "rancher" }, nil},
		{"top-level hostname", "keso.hostname=edge-7", func(c Config) bool { return c.Hostname == "edge-7" }, nil},
		{"nested struct", "keso.k3s.role=agent keso.k3s.server_url=https://s:6443", func(c Config) bool {
			return c.Keso.K3s != nil && c.Keso.K3s.Role == "agent" && c.Keso.K3s.ServerURL == "https://s:6443"
		}, nil},
		{"map key with dots", "keso.sysctl.net.ipv4.ip_forward=1", func(c Config) bool { return c.Keso.Sysctl["net.ipv4.ip_forward"] == "1" }, nil},
		{"bare flag is true", "keso.install.silent", func(c Config) bool { return c.Keso.Install != nil && c.Keso.Install.Silent }, nil},
		{"quoted value", `keso.k3s_args="--node-name=a b"`, func(c Config) bool {
			return reflect.DeepEqual(c.Keso.K3sArgs, []string{"--node-name=a b"})
		}, nil},
		{"config_url", "keso.config_url=http://10.0.2.2:8080/c.yaml", func(c Config) bool { return c.Keso.ConfigURL == "http://10.0.2.2:8080/c.yaml" }, nil},
		{"boot params ignored", "keso.slot=b keso.live keso.root=http://x/r keso.debug console=ttyS0", func(c Config) bool { return true }, nil},
		{"misspelt key suggests", "keso.hostnme=x", func(c Config) bool { return c.Hostname == "" }, []string{`cmdline:1:1: warning: keso.hostnme: unknown key "hostnme"; did you mean "hostname"?`}},
		{"map entry without its bracket", "k3os.sysctl[kernel.printk=1", func(c Config) bool { return len(c.Keso.Sysctl) == 0 }, []string{`cmdline:1:1: warning: k3os.sysctl[kernel.printk: want key[mapkey]=value`}},
		{"bare kernel parameters are the kernel's", "root=/dev/sda1 quiet init=/sbin/init", func(c Config) bool { return reflect.DeepEqual(c, Config{}) }, nil},
		{"invalid value is an error", "quiet keso.k3s.role=boss", func(c Config) bool { return c.Keso.K3s.Role == "" }, []string{`cmdline:1:7: error: keso.k3s.role: "boss" is not server or agent`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Load(Source{Name: "cmdline", Cmdline: true, Data: []byte(tt.line)})
			if !tt.check(r.Config) {
				t.Errorf("config %+v does not hold what %q says", r.Config, tt.line)
			}
			var got []string
			for _, d := range r.Diagnostics {
				got = append(got, d.String())
			}
			if len(got) != len(tt.diags) {
				t.Fatalf("diagnostics = %q, want %q", got, tt.diags)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.diags[i]) {
					t.Errorf("diagnostic %d = %q, want prefix %q", i, got[i], tt.diags[i])
				}
			}
		})
	}
}

func TestShowRoundTrips(t *testing.T) {
	src := []byte("hostname: a\nrun_cmd: [echo hi, [ls, -l]]\nk3os:\n  labels: {x: \"1\"}\n")
	r := LoadFile("in.yaml", src)
	out, err := r.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hostname: a # from in.yaml:1", "labels: # from in.yaml:4", "run_cmd: # from in.yaml:2"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	again := LoadFile("out.yaml", out)
	if len(again.Diagnostics) != 0 || !reflect.DeepEqual(again.Config, r.Config) {
		t.Errorf("show output does not read back to the same config: %v\n%+v\n%+v", again.Diagnostics, again.Config, r.Config)
	}
}
