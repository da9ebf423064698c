package datasource

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// addFiles adds the files matching pattern as seeds.
func addFiles(f *testing.F, pattern string) {
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files match %s: %v", pattern, err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// wellFormed: a parser's Meta is zero with an error, else checkMeta's
// well-formed Meta. It reports whether the parser succeeded.
func wellFormed(t *testing.T, m Meta, err error) bool {
	t.Helper()
	if err != nil {
		if !m.IsZero() {
			t.Fatalf("parser returned %+v with error %v", m, err)
		}
		return false
	}
	checkMeta(t, m)
	return true
}

// checkMeta: a Meta from any parser has trimmed, non-empty, unique keys
// and a trimmed host name, and Meta.Config renders a cloud-config document
// that reads back to the same host name and keys.
func checkMeta(t *testing.T, m Meta) {
	t.Helper()
	if m.Hostname != strings.TrimSpace(m.Hostname) {
		t.Fatalf("host name %q is not trimmed", m.Hostname)
	}
	seen := map[string]bool{}
	for _, k := range m.PublicKeys {
		if k == "" || k != strings.TrimSpace(k) || strings.HasPrefix(k, "#") || strings.Contains(k, "\n") || seen[k] {
			t.Fatalf("public key %q: empty, untrimmed, a comment, several lines or a duplicate (keys %q)", k, m.PublicKeys)
		}
		seen[k] = true
	}
	doc := m.Config()
	if (doc == nil) != (m.Hostname == "" && len(m.PublicKeys) == 0) {
		t.Fatalf("Config() = %q for %+v", doc, m)
	}
	if doc == nil {
		return
	}
	var got struct {
		Hostname string   `yaml:"hostname"`
		Keys     []string `yaml:"ssh_authorized_keys"`
	}
	if err := yaml.Unmarshal(doc, &got); err != nil {
		t.Fatalf("Config() is not YAML: %v\n%s", err, doc)
	}
	if got.Hostname != m.Hostname || !reflect.DeepEqual(got.Keys, m.PublicKeys) {
		t.Fatalf("Config() reads back as %q %q, want %q %q\n%s", got.Hostname, got.Keys, m.Hostname, m.PublicKeys, doc)
	}
}

// FuzzParseNoCloudMeta: NoCloud meta-data (a cidata volume, a seed URL or
// the boot partition) is refused with an error or gives a well-formed Meta.
func FuzzParseNoCloudMeta(f *testing.F) {
	addFiles(f, filepath.Join("testdata", "nocloud", "*.meta-data"))
	for _, s := range []string{
		"instance-id: [unclosed\n", "- a list\n", "\tinstance-id: tab\n", "public-keys: \"ssh-ed25519 A\\nssh-rsa B\"\n",
		"local-hostname: 7\ninstance-id: 1.5\npublic_keys: [[a], {x: [b, c]}]\n", "hostname: ' h '\npublic-keys: {a: '#c', b: ''}\n",
		"a: &x [1, *x]\n", "{\"instance-id\": \"i-1\", \"local-hostname\": \"n\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseNoCloudMeta(data)
		if !wellFormed(t, m, err) {
			return
		}
		if m.InstanceID != strings.TrimSpace(m.InstanceID) {
			t.Fatalf("instance id %q is not trimmed", m.InstanceID)
		}
	})
}

// FuzzParseOpenStackMeta: OpenStack's meta_data.json (config drive or
// metadata service) is refused with an error or gives a well-formed Meta
// whose host name is one label.
func FuzzParseOpenStackMeta(f *testing.F) {
	addFiles(f, filepath.Join("testdata", "openstack", "meta_data.json"))
	for _, s := range []string{
		`{"uuid": 7`, `{}`, `null`, `{"name": "vm.example.com", "keys": [{"data": "ssh-ed25519 A\n\n# c\nssh-rsa B"}]}`,
		`{"hostname": ".x", "public_keys": {"b": " k ", "a": "k"}}`, `{"hostname": "a\u2028b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseOpenStackMeta(data)
		if !wellFormed(t, m, err) {
			return
		}
		if i := strings.IndexByte(m.Hostname, '.'); i > 0 {
			t.Fatalf("host name %q is not the first label", m.Hostname)
		}
	})
}

// FuzzParseEC2KeyIndex: the IMDS public-keys/ listing gives only indexes
// (digits), each a safe path element of the next request.
func FuzzParseEC2KeyIndex(f *testing.F) {
	addFiles(f, filepath.Join("testdata", "ec2", "latest", "meta-data", "public-keys", "_index"))
	for _, s := range []string{"0=ops\n1=backup", "0/\n3/", "", "<html>not found</html>", "../=x\n1=/\n=2\n 4 = a \r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, id := range ParseEC2KeyIndex(data) {
			if id == "" || strings.Trim(id, "0123456789") != "" {
				t.Fatalf("ParseEC2KeyIndex(%q): index %q is not a number", data, id)
			}
		}
	})
}

// FuzzParseGCPKeys: a GCP ssh-keys value gives well-formed keys, each
// taken from the input (after a line's user name).
func FuzzParseGCPKeys(f *testing.F) {
	addFiles(f, filepath.Join("testdata", "gcp", "*-ssh*eys"))
	for _, s := range []string{
		"alice:ssh-ed25519 AAAA\r\nbob:ssh-rsa BBBB bob\n", "ssh-ed25519 AAAA no-user", "a b:k\n:k2\n\t:k3", "u::\nu:#c\nu: k \nv:k",
		"u:ssh-rsa A google-ssh {\"userName\":\"u@x\",\"expireOn\":\"2030-01-01T00:00:00+0000\"}", "\x00:\xff\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys := ParseGCPKeys(data)
		for _, k := range keys {
			if !strings.Contains(strings.ToValidUTF8(string(data), "\uFFFD"), k) {
				t.Fatalf("ParseGCPKeys(%q): key %q is not in the input", data, k)
			}
		}
		checkMeta(t, Meta{PublicKeys: keys})
	})
}

// FuzzParseKeyLines: a plain list of keys (DigitalOcean's and Vultr's
// public-keys) gives well-formed keys, each a line of the input.
func FuzzParseKeyLines(f *testing.F) {
	addFiles(f, filepath.Join("testdata", "digitalocean", "public-keys"))
	for _, s := range []string{"", "a\r\n\n#c\n a \nb", "k\u0080\nk\u2028 x\n\xff", "\x00\n\t\v"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys := ParseKeyLines(data)
		for _, k := range keys {
			if !strings.Contains(strings.ToValidUTF8(string(data), "\uFFFD"), k) || strings.Contains(k, "\n") {
				t.Fatalf("ParseKeyLines(%q): key %q is not a line of the input", data, k)
			}
		}
		checkMeta(t, Meta{PublicKeys: keys})
	})
}

// FuzzParseScalewayConf: Scaleway's /conf?format=json is refused with an
// error or gives a well-formed Meta.
func FuzzParseScalewayConf(f *testing.F) {
	addFiles(f, filepath.Join("testdata", "scaleway", "conf.json"))
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"id": 7}`, `{"hostname": " h\u0085 ", "ssh_public_keys": [{"key": "a\nb"}, {"key": " a "}, {}, null]}`,
		`{"ssh_public_keys": {"key": "k"}}`, "HOSTNAME=h\nSSH_PUBLIC_KEYS=0\n", `{"hostname": "\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseScalewayConf(data)
		wellFormed(t, m, err)
	})
}

// FuzzParsePacketMeta: Equinix Metal's /metadata is refused with an
// error or gives a well-formed Meta.
func FuzzParsePacketMeta(f *testing.F) {
	addFiles(f, filepath.Join("testdata", "packet", "metadata.json"))
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"id": 7}`, `{"hostname": " h\u2028 ", "ssh_keys": ["a\nb", " a ", "", null]}`, `{"ssh_keys": "k"}`, `{"hostname": "\udfff"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParsePacketMeta(data)
		wellFormed(t, m, err)
	})
}

// FuzzParseHetznerKeys: Hetzner's public-keys value is refused with an
// error or gives well-formed keys.
func FuzzParseHetznerKeys(f *testing.F) {
	addFiles(f, filepath.Join("testdata", "hetzner", "public-keys"))
	for _, s := range []string{
		`[]`, ``, `null`, `["a\nb", " a ", "#c", ""]`, `["k\u0080", "k\u2028 x"]`, `"k"`, `[1]`, `[`, `{"a": "b"}`, "[\"\xff\"]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseHetznerKeys(data)
		if err != nil {
			if keys != nil {
				t.Fatalf("ParseHetznerKeys returned %q with error %v", keys, err)
			}
			return
		}
		checkMeta(t, Meta{PublicKeys: keys})
	})
}

// urlPassword is the password in a URL's user info, read without
// net/url: the text between the first ':' and the last '@' of what
// follows "://" up to the path.
func urlPassword(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:at], ":")
	return pw
}

// FuzzNoCloudURL: a `ds=nocloud;s=URL` kernel parameter gives no seed URL
// or an http(s) one ending in '/', and the name it is logged under
// (Redact) does not show the password it may carry.
func FuzzNoCloudURL(f *testing.F) {
	for _, s := range []string{
		"nocloud;s=http://10.0.0.2:8000/seed/", "nocloud-net;seedfrom=https://cfg.example/n", "nocloud;s=https://user:s3cret@cfg.example/seed/",
		"nocloud;i=iid;s=http://[fe80::1%25eth0]/x", "nocloud", "nocloud;s=file:///seed/", "configdrive", "nocloud;s=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ds string) {
		seed := NoCloudURL(ds)
		if seed == "" {
			return
		}
		if !(strings.HasPrefix(seed, "http://") || strings.HasPrefix(seed, "https://")) || !strings.HasSuffix(seed, "/") {
			t.Fatalf("NoCloudURL(%q) = %q: want an http(s) URL ending in /", ds, seed)
		}
		// The password's place in the logged name holds something else
		// (the same text may stand elsewhere, in a fragment say).
		if pw := urlPassword(seed); pw != "" && pw != "xxxxx" {
			if shown := Redact(seed); urlPassword(shown) == pw {
				t.Fatalf("Redact(%q) = %q shows the password %q", seed, shown, pw)
			}
		}
	})
}
