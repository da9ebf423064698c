package sshd

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// newerThanSSHAudit25 are algorithms that ssh-audit 2.5.0 (Debian 12)
// reports as "[warn] unknown algorithm" because they came after it: the
// ML-KEM hybrid key exchange (OpenSSH 9.9, 2024) and the strict key
// exchange marker that closes the Terrapin attack (OpenSSH 9.6, 2023),
// which newer ssh-audit releases require. No other warning is allowed.
var newerThanSSHAudit25 = map[string]bool{
	"mlkem768x25519-sha256":        true,
	"kex-strict-s-v00@openssh.com": true,
}

// TestSSHAudit points ssh-audit (what admins and scanners use) at the
// server: no [fail] finding, no [warn] beyond the unknown-to-2.5.0
// algorithms above, and exactly the algorithms keso means to offer.
func TestSSHAudit(t *testing.T) {
	if _, err := exec.LookPath("ssh-audit"); err != nil {
		t.Skip("SKIPPED: ssh-audit is not on PATH (Debian package ssh-audit, installed by scripts/deps.sh): the server's algorithms are NOT audited")
	}
	e := startServer(t, envOpts{rancherID: -1})
	out, errs, code := runTool(t, "ssh-audit", []string{"-n", "-p", strconv.Itoa(e.port), "127.0.0.1"}, nil)
	t.Logf("ssh-audit -p %d 127.0.0.1 (exit %d):\n%s%s", e.port, code, out, errs)
	// ssh-audit's exit codes: 0 good, 1 connection error, 2 warnings, 3 failures.
	if code == 1 || code == 3 || code < 0 {
		t.Errorf("ssh-audit: exit status %d, want 0 or 2 (no failure, no connection error)", code)
	}
	if fails := regexp.MustCompile(`(?m)^.*\[fail\].*$`).FindAllString(out, -1); len(fails) > 0 {
		t.Errorf("ssh-audit: got %d [fail] findings, want none:\n%s", len(fails), strings.Join(fails, "\n"))
	}
	line := regexp.MustCompile(`(?m)^\((kex|key|enc|mac)\) (\S+)(?: \(\d+-bit\))?\s+-- \[(\w+)\] (.*)$`)
	got := map[string][]string{}
	for _, m := range line.FindAllStringSubmatch(out, -1) {
		cat, alg, level, msg := m[1], m[2], m[3], m[4]
		got[cat] = append(got[cat], alg)
		if level == "warn" && !(msg == "unknown algorithm" && newerThanSSHAudit25[alg]) {
			t.Errorf("ssh-audit: (%s) %s: got [warn] %s, want no warning", cat, alg, msg)
		}
	}
	for _, tc := range []struct {
		cat  string
		want []string
	}{
		{"kex", append(append([]string{}, KeyExchanges...), "kex-strict-s-v00@openssh.com")},
		{"key", []string{"ssh-ed25519", "rsa-sha2-256", "rsa-sha2-512"}},
		{"enc", Ciphers},
		{"mac", MACs},
	} {
		if strings.Join(got[tc.cat], " ") != strings.Join(tc.want, " ") {
			t.Errorf("ssh-audit (%s): got %q, want %q", tc.cat, got[tc.cat], tc.want)
		}
	}
	if !strings.Contains(out, "(key) rsa-sha2-512 (3072-bit)") {
		t.Errorf("ssh-audit: want a 3072-bit RSA host key offered as rsa-sha2-512")
	}
}
