package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"gopkg.in/yaml.v3"
)

// showOf runs `keso config show ARGS` and returns its output parsed as
// plain YAML (the comments naming the sources dropped).
func showOf(t *testing.T, args ...string) any {
	t.Helper()
	var out bytes.Buffer
	if code := configShow(args, &out); code != 0 {
		t.Fatalf("keso config show %q: exit %d\n%s", args, code, out.String())
	}
	var got any
	if err := yaml.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("keso config show %q printed YAML it cannot read back: %v\n%s", args, err, out.String())
	}
	return got
}

func yamlOf(t *testing.T, src string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatalf("want YAML: %v", err)
	}
	return v
}

// TestConfigShowK3OSSpellings: k3OS-style files in every spelling k3OS's
// reader accepts (testdata/k3os/*.yaml) show as the canonical config
// written by hand beside each (*.want.yaml), with no warning.
func TestConfigShowK3OSSpellings(t *testing.T) {
	files, _ := filepath.Glob("testdata/k3os/*.yaml")
	var n int
	for _, f := range files {
		if strings.HasSuffix(f, ".want.yaml") {
			continue
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range cloudconfig.LoadFile(f, data).Diagnostics {
				t.Errorf("%s", d)
			}
			want, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".want.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := showOf(t, f), yamlOf(t, string(want)); !reflect.DeepEqual(got, want) {
				t.Errorf("keso config show %s =\n%v\nwant\n%v", f, got, want)
			}
		})
	}
	if n < 5 {
		t.Fatalf("found %d k3OS-style files in testdata/k3os, want at least 5", n)
	}
}

// TestConfigShowK3OSCmdline: k3OS's kernel command-line grammar (its
// README, "Kernel cmdline") shows as the canonical config.
func TestConfigShowK3OSCmdline(t *testing.T) {
	for _, tc := range []struct{ name, cmdline, want string }{
		{"repeated singular key is a list", "console=ttyS0 k3os.dns_nameserver=1.1.1.1 k3os.dns_nameserver=8.8.8.8",
			"keso: {dns_nameservers: [1.1.1.1, 8.8.8.8]}"},
		{"repeated plural key is a list", "k3os.ntp_servers=a.pool k3os.ntp_servers=b.pool,c.pool",
			"keso: {ntp_servers: [a.pool, b.pool, c.pool]}"},
		{"map entry in brackets, quoted value", `k3os.sysctl[kernel.printk]="4 4 1 7" k3os.labels[region]=us-west`,
			"keso: {sysctl: {kernel.printk: 4 4 1 7}, labels: {region: us-west}}"},
		{"plural map name", "k3os.sysctls[vm.swappiness]=10", "keso: {sysctl: {vm.swappiness: \"10\"}}"},
		{"camelCase and lowercase keys", "k3os.serverUrl=https://s:6443 k3os.k3sargs=--disable=traefik k3os.dataSources=cdrom",
			"keso: {server_url: https://s:6443, k3s_args: [--disable=traefik], data_sources: [cdrom]}"},
		{"bare booleans are true", "k3os.install.silent k3os.install.force_efi k3os.install.efi",
			"keso: {install: {silent: true, force_efi: true}}"},
		{"automated install keys", "k3os.mode=install k3os.fallback_mode=install k3os.install.silent=true k3os.install.device=/dev/vda " +
			"k3os.install.config_url=http://10.0.2.2/c.yaml k3os.install.iso_url=http://10.0.2.2/k.iso k3os.install.no_format " +
			"k3os.install.tty=ttyS0 k3os.install.debug k3os.install.power_off=true",
			"keso: {install: {silent: true, device: /dev/vda, config_url: http://10.0.2.2/c.yaml, iso_url: http://10.0.2.2/k.iso, no_format: true, tty: ttyS0, debug: true, power_off: true}}"},
		{"top-level keys with and without the prefix", "hostname=edge-9 k3os.ssh_authorized_key=github:alice k3os.password=rancher",
			"{hostname: edge-9, ssh_authorized_keys: [github:alice], keso: {password: rancher}}"},
		{"token", "k3os.token=K10abc::server:xyz", "keso: {token: K10abc::server:xyz}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, d := range cloudconfig.Load(cloudconfig.Source{Name: "cmdline", Data: []byte(tc.cmdline), Cmdline: true}).Diagnostics {
				t.Errorf("%s", d)
			}
			if got, want := showOf(t, "--cmdline", tc.cmdline), yamlOf(t, tc.want); !reflect.DeepEqual(got, want) {
				t.Errorf("keso config show --cmdline %q =\n%v\nwant\n%v", tc.cmdline, got, want)
			}
		})
	}
}

// TestConfigShowExamples: every file in config-examples/ shows, and what
// it shows (canonical keys) loads back to the same config.
func TestConfigShowExamples(t *testing.T) {
	files, _ := filepath.Glob("../../config-examples/*.yaml")
	if len(files) < 10 {
		t.Fatalf("found %d examples, want at least 10", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want := cloudconfig.LoadFile(f, data).Config
			var out bytes.Buffer
			if code := configShow([]string{f}, &out); code != 0 {
				t.Fatalf("exit %d", code)
			}
			back := cloudconfig.LoadFile("shown", out.Bytes())
			for _, d := range back.Diagnostics {
				t.Errorf("shown config: %s", d)
			}
			if !reflect.DeepEqual(back.Config, want) {
				t.Errorf("shown config loads back as\n%+v\nwant\n%+v", back.Config, want)
			}
		})
	}
}
