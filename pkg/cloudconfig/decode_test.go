package cloudconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestDecodeK3OSSchema(t *testing.T) {
	src := `#cloud-config
ssh_authorized_keys:
  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPz4Lj0gxTvVpyyM5JfpzOvmJYSUk3gWUAuhYvE8SSXJ admin@store
  - github:octocat
write_files:
  - path: /etc/motd
    content: aGVsbG8K
    encoding: b64
    owner: root:root
    permissions: "0644"
hostname: store-1
init_cmd:
  - echo init
boot_cmd:
  - [sh, -c, "echo boot"]
run_cmd:
  - echo run
k3os:
  data_sources: [cdrom, aws]
  modules: [kvm, "nvme io_timeout=60"]
  sysctl:
    kernel.printk: "4 4 1 7"
    net.ipv4.ip_forward: 1
  ntp_servers: [0.pool.ntp.org]
  dns_nameservers: [8.8.8.8, 1.1.1.1]
  wifi:
    - name: store-wifi
      passphrase: supersecret
  password: rancher
  server_url: https://server:6443
  token: TOKEN
  labels: {region: eu, store: "42"}
  taints: ["dedicated=edge:NoSchedule"]
  k3s_args: [server, --disable-agent]
  environment: {http_proxy: "http://proxy:3128"}
  install:
    force_efi: true
    device: /dev/sda
    config_url: https://example.com/config.yaml
    silent: true
    iso_url: https://example.com/keso.iso
    power_off: true
    no_format: false
    debug: true
    tty: ttyS0
`
	r := LoadFile("k3os.yaml", []byte(src))
	if len(r.Diagnostics) != 0 {
		t.Fatalf("diagnostics: %v", r.Diagnostics)
	}
	c := r.Config
	want := Config{
		SSHAuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPz4Lj0gxTvVpyyM5JfpzOvmJYSUk3gWUAuhYvE8SSXJ admin@store", "github:octocat"},
		WriteFiles:        []File{{Path: "/etc/motd", Content: "aGVsbG8K", Encoding: "b64", Owner: "root:root", Permissions: "0644"}},
		Hostname:          "store-1",
		InitCmd:           []Command{{Shell: "echo init"}},
		BootCmd:           []Command{{Argv: []string{"sh", "-c", "echo boot"}}},
		RunCmd:            []Command{{Shell: "echo run"}},
		Keso: System{
			DataSources:    []string{"cdrom", "aws"},
			Modules:        []string{"kvm", "nvme io_timeout=60"},
			Sysctl:         map[string]string{"kernel.printk": "4 4 1 7", "net.ipv4.ip_forward": "1"},
			NTPServers:     []string{"0.pool.ntp.org"},
			DNSNameservers: []string{"8.8.8.8", "1.1.1.1"},
			Wifi:           []Wifi{{Name: "store-wifi", Passphrase: "supersecret"}},
			Password:       "rancher",
			ServerURL:      "https://server:6443",
			Token:          "TOKEN",
			Labels:         map[string]string{"region": "eu", "store": "42"},
			Taints:         []string{"dedicated=edge:NoSchedule"},
			K3sArgs:        []string{"server", "--disable-agent"},
			Environment:    map[string]string{"http_proxy": "http://proxy:3128"},
			Install: &Install{ForceEFI: true, Device: "/dev/sda", ConfigURL: "https://example.com/config.yaml", Silent: true,
				ISOURL: "https://example.com/keso.iso", PowerOff: true, Debug: true, TTY: "ttyS0"},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	content, err := DecodeContent(c.WriteFiles[0])
	if got, want := string(content), "hello\n"; err != nil || got != want {
		t.Errorf("DecodeContent = %q, %v; want %q", got, err, want)
	}
}

func TestDecodeKesoAdditions(t *testing.T) {
	src := `keso:
  network:
    wait_online: 30s
    interfaces:
      - name: eth0
        dhcp: true
      - mac: "52:54:00:12:34:56"
        addresses: [10.0.0.5/24]
        gateway: 10.0.0.1
        routes: [{to: 10.1.0.0/16, via: 10.0.0.254, metric: 10}]
        dns: [10.0.0.1]
        mtu: 9000
    vlans: [{link: eth1, id: 100, addresses: [10.100.0.5/24]}]
    bonds: [{name: bond0, mode: 802.3ad, interfaces: [eth2, eth3], dhcp: true}]
  disks: [{device: /dev/vdb, format: true, mount: /var/lib/data, grow: true}]
  proxy: {http_proxy: "http://p:3128", no_proxy: [localhost, 10.0.0.0/8]}
  k3s: {role: server, cluster_init: true, token: t, args: [--disable=traefik], config: {write-kubeconfig-mode: "0644", tls-san: [a, b]}}
  ssh: {password_auth: false, port: 2222}
  upgrade:
    channel: "https://updates.example.com/stable"
    public_keys: ["ed25519:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
    health_checks:
      - curl -fsS http://127.0.0.1:8080/healthz
      - [/usr/local/bin/check-till, --quick]
`
	r := LoadFile("keso.yaml", []byte(src))
	if len(r.Diagnostics) != 0 {
		t.Fatalf("diagnostics: %v", r.Diagnostics)
	}
	n := r.Config.Keso.Network
	if got, want := n.Interfaces[1].Routes[0], (Route{To: "10.1.0.0/16", Via: "10.0.0.254", Metric: 10}); got != want {
		t.Errorf("route = %+v, want %+v", got, want)
	}
	if got, want := n.Interfaces[1].MTU, 9000; got != want {
		t.Errorf("mtu = %d, want %d", got, want)
	}
	if got, want := n.VLANs[0].ID, 100; got != want {
		t.Errorf("vlan id = %d, want %d", got, want)
	}
	if got, want := n.Bonds[0].Interfaces, []string{"eth2", "eth3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("bond members = %v, want %v", got, want)
	}
	if got, want := r.Config.Keso.K3s.Config["tls-san"], []any{"a", "b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("k3s config tls-san = %#v, want %#v", got, want)
	}
	if got, want := r.Config.Keso.SSH.Port, 2222; got != want {
		t.Errorf("ssh port = %d, want %d", got, want)
	}
	if got, want := r.Config.Keso.Upgrade.HealthChecks, []Command{{Shell: "curl -fsS http://127.0.0.1:8080/healthz"}, {Argv: []string{"/usr/local/bin/check-till", "--quick"}}}; !reflect.DeepEqual(got, want) {
		t.Errorf("upgrade.health_checks = %#v, want %#v", got, want)
	}
}

func TestDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // each a substring of one diagnostic, in order
	}{
		{"misspelt top-level key", "hostnme: a\n", []string{`f.yaml:1:1: warning: unknown key "hostnme"; did you mean "hostname"?`}},
		{"misspelt nested key", "keso:\n  ntp_sever: [a]\n", []string{`f.yaml:2:3: warning: unknown key "keso.ntp_sever"; did you mean "ntp_servers"?`}},
		{"misspelt key under k3os:, named as written", "k3os:\n  ntpSever: [a]\n", []string{`f.yaml:2:3: warning: unknown key "k3os.ntpSever"`}},
		{"wrong type under k3os:, named as written", "k3os:\n  dataSources: {a: b}\n", []string{`f.yaml:2:16: error: k3os.dataSources: expected a list, got a mapping`}},
		{"one key in two spellings", "keso:\n  data_sources: [cdrom]\n  dataSource: [aws]\n", []string{`f.yaml:3:3: warning: duplicate key "keso.dataSource" (first at line 2 as "keso.data_sources"); the last one wins`}},
		{"unrelated key, no suggestion", "zzzzzzzz: 1\n", []string{`f.yaml:1:1: warning: unknown key "zzzzzzzz" (ignored)`}},
		{"string for list is a one-element list (k3OS)", "ssh_authorized_keys: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n", nil},
		{"list for string", "hostname: [a]\n", []string{`f.yaml:1:11: error: hostname: expected a string, got a list`}},
		{"mapping for list", "keso:\n  modules: {a: b}\n", []string{`f.yaml:2:12: error: keso.modules: expected a list, got a mapping`}},
		{"bad bool", "keso:\n  install:\n    silent: maybe\n", []string{`f.yaml:3:13: error: keso.install.silent: expected true or false, got "maybe"`}},
		{"bad int", "keso:\n  ssh:\n    port: twenty\n", []string{`f.yaml:3:11: error: keso.ssh.port: expected a whole number`}},
		{"bad CIDR", "keso:\n  network:\n    interfaces:\n      - name: eth0\n        addresses: [10.0.0.1]\n", []string{`f.yaml:5:21: error: keso.network.interfaces[0].addresses[0]: "10.0.0.1" is not an address in CIDR form`}},
		{"bad sysctl name", "keso:\n  sysctl:\n    \"net ipv4\": 1\n", []string{`f.yaml:3:5: error: keso.sysctl.net ipv4: "net ipv4" is not a sysctl name`}},
		{"relative write_files path", "write_files:\n  - path: etc/x\n", []string{`f.yaml:2:11: error: write_files[0].path: "etc/x" is not an absolute path`}},
		{"dotdot write_files path", "write_files:\n  - path: /etc/../../x\n", []string{`f.yaml:2:11: error: write_files[0].path: "/etc/../../x" must not contain '..'`}},
		{"permissions not octal", "write_files:\n  - path: /x\n    permissions: \"0999\"\n", []string{`f.yaml:3:18: error: write_files[0].permissions: "0999" is not an octal mode`}},
		{"unknown encoding", "write_files:\n  - path: /x\n    encoding: rot13\n", []string{`f.yaml:3:15: error: write_files[0].encoding: unknown encoding "rot13"`}},
		{"bad base64", "write_files:\n  - path: /x\n    encoding: b64\n    content: '!!!'\n", []string{`f.yaml:4:14: error: write_files[0].content: cannot decode as b64`}},
		{"hostname not RFC 1123", "hostname: -bad_name\n", []string{`f.yaml:1:11: error: hostname: "-bad_name" is not a valid host name`}},
		{"bad IP", "keso:\n  dns_nameservers: [1.1.1.x]\n", []string{`f.yaml:2:21: error: keso.dns_nameservers[0]: "1.1.1.x" is not an IP address`}},
		{"agent without server", "keso:\n  k3s:\n    role: agent\n", []string{`f.yaml:3:11: error: keso.k3s.role: an agent needs server_url`}},
		{"bad role", "keso:\n  k3s:\n    role: master\n", []string{`f.yaml:3:11: error: keso.k3s.role: "master" is not server or agent`}},
		{"bad vlan id", "keso:\n  network:\n    vlans: [{link: eth0, id: 5000}]\n", []string{`f.yaml:3:30: error: keso.network.vlans[0].id: 5000 is not a VLAN id`}},
		{"bad taint", "keso:\n  taints: [foo]\n", []string{`f.yaml:2:12: error: keso.taints[0]: "foo" is not a taint`}},
		{"unknown data source", "keso:\n  data_sources: [cdrm]\n", []string{`f.yaml:2:18: error: keso.data_sources[0]: unknown data source "cdrm"`}},
		{"bad ssh key", "ssh_authorized_keys: [not-a-key]\n", []string{`f.yaml:1:23: error: ssh_authorized_keys[0]: not an SSH public key`}},
		{"syntax error", "hostname: a\n  b: [\n", []string{`f.yaml:2:1: error: YAML syntax:`}},
		{"top level not a mapping", "- a\n- b\n", []string{`f.yaml:1:1: error: a cloud-config must be a mapping`}},
		{"both blocks", "k3os:\n  password: a\nkeso:\n  password: b\n", []string{`f.yaml:4:3: warning: both k3os.password (line 2) and keso.password are set; keso.password wins`}},
		{"duplicate key", "hostname: a\nhostname: b\n", []string{`f.yaml:2:1: warning: duplicate key "hostname" (first at line 1)`}},
		{"command of wrong shape", "run_cmd:\n  - {a: b}\n", []string{`f.yaml:2:5: error: run_cmd[0]: expected a command line (string) or an argv list, got a mapping`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := LoadFile("f.yaml", []byte(tt.src))
			var got []string
			for _, d := range r.Diagnostics {
				got = append(got, d.String())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d diagnostics %q, want %d like %q", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("diagnostic %d = %q, want it to contain %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestInvalidValuesAreNotApplied: what fails validation is cleared, what is
// valid next to it stays.
func TestInvalidValuesAreNotApplied(t *testing.T) {
	src := `hostname: "bad host"
write_files:
  - {path: relative, content: x}
  - {path: /ok, content: y}
keso:
  dns_nameservers: [1.1.1.1, nope]
  sysctl: {"bad name": 1, vm.swappiness: 10}
`
	r := LoadFile("f.yaml", []byte(src))
	c := r.Config
	if got, want := len(r.Diagnostics.Errors()), 4; got != want {
		t.Errorf("errors = %d (%v), want %d", got, r.Diagnostics, want)
	}
	if c.Hostname != "" {
		t.Errorf("hostname = %q, want cleared", c.Hostname)
	}
	if got, want := c.WriteFiles, []File{{Path: "/ok", Content: "y"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("write_files = %+v, want %+v", got, want)
	}
	if got, want := c.Keso.DNSNameservers, []string{"1.1.1.1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("dns = %v, want %v", got, want)
	}
	if got, want := c.Keso.Sysctl, map[string]string{"vm.swappiness": "10"}; !reflect.DeepEqual(got, want) {
		t.Errorf("sysctl = %v, want %v", got, want)
	}
	if !r.Diagnostics.ErrorAt("write_files[0]") || r.Diagnostics.ErrorAt("write_files[1]") {
		t.Errorf("ErrorAt: want write_files[0] only, diags %v", r.Diagnostics)
	}
}

func TestPosition(t *testing.T) {
	r := LoadFile("f.yaml", []byte("hostname: a\nkeso:\n  k3s:\n    token: t\n"))
	file, line, col, ok := r.Position("keso.k3s.token")
	if !ok || file != "f.yaml" || line != 4 || col != 12 {
		t.Errorf("Position = %s:%d:%d %v, want f.yaml:4:12 true", file, line, col, ok)
	}
}

func TestScriptUserData(t *testing.T) {
	r := Load(Source{Name: "a.yaml", Data: []byte("hostname: a\n")}, Source{Name: "cidata", Data: []byte("#!/bin/sh\necho hi\n")})
	if got, want := r.Scripts, []Script{{Source: "cidata", Content: "#!/bin/sh\necho hi\n"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("scripts = %+v, want %+v", got, want)
	}
	if got, want := r.Config.Hostname, "a"; got != want {
		t.Errorf("hostname = %q, want %q", got, want)
	}
}

func TestAliasBomb(t *testing.T) {
	src := `a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
keso:
  k3s_args: *g
`
	r := LoadFile("f.yaml", []byte(src))
	if r.Valid() {
		t.Errorf("want an error for an exponential alias expansion")
	}
}

// TestPositionsFollowDroppedEntries: when the validator drops an invalid
// list entry, the paths of the entries after it name their own lines.
func TestPositionsFollowDroppedEntries(t *testing.T) {
	src := "write_files:\n  - {path: relative}\n  - {path: /ok, content: x}\n  - {path: /ok2, owner: alice}\n"
	r := LoadFile("f.yaml", []byte(src))
	if got := len(r.Config.WriteFiles); got != 2 {
		t.Fatalf("kept %d entries, want 2", got)
	}
	tests := []struct {
		path string
		line int
	}{{"write_files[0]", 3}, {"write_files[0].path", 3}, {"write_files[1].owner", 4}}
	for _, tt := range tests {
		if _, line, _, ok := r.Position(tt.path); !ok || line != tt.line {
			t.Errorf("Position(%s) = line %d (%v), want %d", tt.path, line, ok, tt.line)
		}
	}
	if _, _, _, ok := r.Position("write_files[2]"); ok {
		t.Errorf("Position(write_files[2]) found; there are only two entries now")
	}
}

// TestYAMLFallback: strings yaml.v3 writes as literal blocks it cannot read
// back (FuzzLoad found the first) render double-quoted, and every config
// example renders through the fallback and reads back the same.
func TestYAMLFallback(t *testing.T) {
	for _, content := range []string{"\n00", " 00\nx", "\n\nx", "\n 00", "  a\n b", "\t\nx", "plain", "a\nb\n"} {
		r := Load(Source{Name: "f.yaml", Data: []byte("write_files:\n  - path: /etc/x\n    content: " + strconv.Quote(content) + "\n")})
		y, err := r.YAML()
		if err != nil {
			t.Fatalf("content %q: YAML: %v", content, err)
		}
		back := LoadFile("back.yaml", y)
		if len(back.Config.WriteFiles) != 1 || back.Config.WriteFiles[0].Content != content {
			t.Errorf("content %q: rendered\n%s\nread back as %+v", content, y, back.Config.WriteFiles)
		}
	}
	files, _ := filepath.Glob("../../config-examples/*.yaml")
	for _, name := range files {
		data, _ := os.ReadFile(name)
		r := LoadFile(name, data)
		n, err := nodeOf(reflect.ValueOf(r.Config))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		y, err := yaml.Marshal(n)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if back := LoadFile(name, y); !reflect.DeepEqual(back.Config, r.Config) {
			t.Errorf("%s: the fallback rendering reads back differently:\n%s", name, y)
		}
	}
}
