package sshd

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"golang.org/x/crypto/ssh"
)

// fuzzKeyLine is a deterministic authorized_keys line.
func fuzzKeyLine(f *testing.F, seed byte, comment string) []byte {
	pub, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)).Public())
	if err != nil {
		f.Fatal(err)
	}
	return append(bytes.TrimSpace(ssh.MarshalAuthorizedKey(pub)), []byte(" "+comment+"\n")...)
}

// FuzzAuthorizedKeys: an authorized_keys file gives at most one key per
// line, keys with options only as fingerprints (they are refused), and the
// keys written back without options read back the same.
func FuzzAuthorizedKeys(f *testing.F) {
	a, b := fuzzKeyLine(f, 1, "laptop"), fuzzKeyLine(f, 2, "ci")
	f.Add(append(append([]byte("# Written by keso from ssh_authorized_keys at every boot; edits here are replaced.\n"), a...), b...))
	f.Add(append([]byte(`command="reboot",no-pty `), a...))
	f.Add(append(append([]byte("garbage line\n\n  \t\n"), a...), []byte("ssh-rsa AAAA broken\r\n")...))
	f.Add(append([]byte(`restrict,from="10.0.0.0/8" `), b...))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, withOpts := authorizedKeys(data)
		if n := len(keys) + len(withOpts); n > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("authorizedKeys(%q): %d keys from %d lines", data, n, bytes.Count(data, []byte("\n"))+1)
		}
		for _, fp := range withOpts {
			if len(fp) < len("SHA256:") || fp[:7] != "SHA256:" {
				t.Fatalf("authorizedKeys(%q): option key named %q, want a SHA256 fingerprint", data, fp)
			}
		}
		var out []byte
		for _, k := range keys {
			out = append(out, ssh.MarshalAuthorizedKey(k)...)
		}
		again, opts := authorizedKeys(out)
		if len(again) != len(keys) || len(opts) != 0 {
			t.Fatalf("authorizedKeys(%q): %d keys, written back %d keys and %d with options", data, len(keys), len(again), len(opts))
		}
		for i := range keys {
			if !bytes.Equal(again[i].Marshal(), keys[i].Marshal()) {
				t.Fatalf("authorizedKeys(%q): key %d reads back as another key", data, i)
			}
		}
	})
}
