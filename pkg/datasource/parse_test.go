package datasource

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got (as indented JSON) with testdata/<name>.
func golden(t *testing.T, name string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s differs from the golden file:\n got %s\nwant %s", p, b, want)
	}
}

func TestParseNoCloudMetaGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/nocloud/*.meta-data")
	if err != nil || len(files) == 0 {
		t.Fatalf("no meta-data cases in testdata/nocloud: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".meta-data")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := ParseNoCloudMeta(data)
			if err != nil {
				t.Fatalf("ParseNoCloudMeta: %v", err)
			}
			golden(t, "nocloud/"+name+".golden.json", m)
		})
	}
}

func TestParseNoCloudMetaErrors(t *testing.T) {
	for _, in := range []string{"instance-id: [unclosed\n", "- a list\n- not a map\n", "\tinstance-id: tab\n"} {
		if m, err := ParseNoCloudMeta([]byte(in)); err == nil {
			t.Errorf("ParseNoCloudMeta(%q) = %+v, nil; want an error", in, m)
		}
	}
}

func TestParseOpenStackMetaGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/openstack/meta_data.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseOpenStackMeta(data)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "openstack/meta_data.golden.json", m)
	if _, err := ParseOpenStackMeta([]byte(`{"uuid": 7`)); err == nil {
		t.Error("ParseOpenStackMeta(truncated JSON) = nil error; want an error")
	}
}

func TestParseEC2KeyIndex(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"0=ops\n1=backup", []string{"0", "1"}},
		{"0=ops\n", []string{"0"}},
		{"0/\n3/", []string{"0", "3"}},
		{"", nil},
		{"<html>not found</html>", nil},
	} {
		if got := ParseEC2KeyIndex([]byte(tc.in)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseEC2KeyIndex(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMetaConfig(t *testing.T) {
	for _, tc := range []struct {
		meta Meta
		want string
	}{
		{Meta{InstanceID: "i-1"}, ""},
		{Meta{Hostname: "store-7"}, "#cloud-config\n# generated from meta-data\nhostname: \"store-7\"\n"},
		{Meta{Hostname: `we"ird`, PublicKeys: []string{"ssh-ed25519 AAAA a@b"}},
			"#cloud-config\n# generated from meta-data\nhostname: \"we\\\"ird\"\nssh_authorized_keys:\n  - \"ssh-ed25519 AAAA a@b\"\n"},
		// C1 controls and the byte-order mark are not YAML text (found by
		// FuzzParseGCPKeys: a plain-text key value ending in U+0080), and
		// yaml.v3 folds U+2028 followed by a blank like a line break.
		{Meta{PublicKeys: []string{"ssh-ed25519 A \u0080\u0085\u009f\ufeff\u2028 x"}},
			"#cloud-config\n# generated from meta-data\nssh_authorized_keys:\n  - \"ssh-ed25519 A \\x80\\x85\\x9f\\ufeff\\u2028 x\"\n"},
	} {
		if got := string(tc.meta.Config()); got != tc.want {
			t.Errorf("%+v.Config() =\n%s\nwant\n%s", tc.meta, got, tc.want)
		}
		checkMeta(t, tc.meta) // reads back to the same facts
	}
}

func TestNoCloudURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nocloud;s=http://10.0.2.2:8000/seed/", "http://10.0.2.2:8000/seed/"},
		{"nocloud-net;s=https://cfg.example/store-7", "https://cfg.example/store-7/"},
		{"nocloud;seedfrom=http://x/", "http://x/"},
		{"nocloud;s=file:///cdrom/", ""},
		{"nocloud", ""},
		{"ec2;s=http://x/", ""},
	} {
		if got := NoCloudURL(tc.in); got != tc.want {
			t.Errorf("NoCloudURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
