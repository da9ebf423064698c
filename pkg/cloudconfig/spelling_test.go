package cloudconfig

import (
	"reflect"
	"testing"
)

func TestCanonicalSpelling(t *testing.T) {
	for _, tc := range []struct {
		in     reflect.Type
		key    string
		want   string
		wantOK bool
	}{
		{reflect.TypeFor[System](), "data_sources", "data_sources", true},
		{reflect.TypeFor[System](), "dataSources", "data_sources", true},
		{reflect.TypeFor[System](), "datasources", "data_sources", true},
		{reflect.TypeFor[System](), "datasource", "data_sources", true},
		{reflect.TypeFor[System](), "data_source", "data_sources", true},
		{reflect.TypeFor[System](), "dns_nameserver", "dns_nameservers", true},
		{reflect.TypeFor[System](), "ntpServer", "ntp_servers", true},
		{reflect.TypeFor[System](), "module", "modules", true},
		{reflect.TypeFor[System](), "label", "labels", true},
		{reflect.TypeFor[System](), "taint", "taints", true},
		{reflect.TypeFor[System](), "k3s_arg", "k3s_args", true},
		{reflect.TypeFor[System](), "k3sArgs", "k3s_args", true},
		{reflect.TypeFor[System](), "sysctls", "sysctl", true},
		{reflect.TypeFor[System](), "serverUrl", "server_url", true},
		{reflect.TypeFor[System](), "serverurl", "server_url", true},
		{reflect.TypeFor[System](), "ntp_sever", "", false},
		{reflect.TypeFor[System](), "k3s", "k3s", true}, // a field's own name is never another's singular
		{reflect.TypeFor[Config](), "sshAuthorizedKeys", "ssh_authorized_keys", true},
		{reflect.TypeFor[Config](), "ssh_authorized_key", "ssh_authorized_keys", true},
		{reflect.TypeFor[Config](), "writeFiles", "write_files", true},
		{reflect.TypeFor[Config](), "write_file", "write_files", true},
		{reflect.TypeFor[Config](), "runcmd", "run_cmd", true},
		{reflect.TypeFor[Config](), "runCmd", "run_cmd", true},
		{reflect.TypeFor[Config](), "bootcmd", "boot_cmd", true},
		{reflect.TypeFor[Config](), "hostnme", "", false},
		{reflect.TypeFor[Wifi](), "pass", "passphrase", true},
		{reflect.TypeFor[Wifi](), "password", "passphrase", true},
		{reflect.TypeFor[Install](), "forceEfi", "force_efi", true},
		{reflect.TypeFor[Install](), "efi", "force_efi", true},
		{reflect.TypeFor[Disk](), "label", "label", true}, // not fs_label
		{reflect.TypeFor[Network](), "interface", "interfaces", true},
		{reflect.TypeFor[Addressing](), "address", "addresses", true},
	} {
		got, ok := structFields(tc.in).canonical(tc.key)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: canonical(%q) = %q, %v; want %q, %v", tc.in.Name(), tc.key, got, ok, tc.want, tc.wantOK)
		}
	}
}

// TestSpellingsMergeAsOneKey: a later source's spelling replaces an
// earlier source's, because keys are canonical before the merge.
func TestSpellingsMergeAsOneKey(t *testing.T) {
	r := Load(
		Source{Name: "a.yaml", Data: []byte("k3os:\n  data_sources: [aws]\n  dnsNameservers: [1.1.1.1]\n")},
		Source{Name: "b.yaml", Data: []byte("k3os:\n  dataSource: cdrom\n")},
		Source{Name: "cmdline", Cmdline: true, Data: []byte("k3os.dns_nameserver=8.8.8.8")},
	)
	for _, d := range r.Diagnostics {
		t.Errorf("%s", d)
	}
	if got, want := r.Config.Keso.DataSources, []string{"cdrom"}; !reflect.DeepEqual(got, want) {
		t.Errorf("data_sources = %q, want %q", got, want)
	}
	if got, want := r.Config.Keso.DNSNameservers, []string{"8.8.8.8"}; !reflect.DeepEqual(got, want) {
		t.Errorf("dns_nameservers = %q, want %q", got, want)
	}
	if got, want := r.Origins["keso.data_sources"], "b.yaml:2"; got != want {
		t.Errorf("origin of keso.data_sources = %q, want %q", got, want)
	}
}
