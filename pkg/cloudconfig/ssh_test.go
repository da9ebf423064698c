package cloudconfig

import (
	"reflect"
	"strings"
	"testing"
)

// TestValidateSSH: good keso.ssh values are kept as written, bad ones are
// errors at their line and cleared (so their defaults apply).
func TestValidateSSH(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want SSH
		err  string // substring of the one error, "" for none
	}{
		{"all set", "keso:\n  ssh:\n    max_auth_tries: 3\n    login_grace_time: 30s\n    max_startups: 4\n    idle_timeout: 15m\n    allow_tcp_forwarding: \"no\"\n",
			SSH{MaxAuthTries: 3, LoginGraceTime: "30s", MaxStartups: 4, IdleTimeout: "15m", AllowTCPForwarding: "no"}, ""},
		{"unquoted no", "keso:\n  ssh:\n    allow_tcp_forwarding: no\n", SSH{AllowTCPForwarding: "no"}, ""},
		{"local", "keso:\n  ssh:\n    allow_tcp_forwarding: local\n", SSH{AllowTCPForwarding: "local"}, ""},
		{"idle 0 is off", "keso:\n  ssh:\n    idle_timeout: 0s\n", SSH{IdleTimeout: "0s"}, ""},
		{"negative tries", "keso:\n  ssh:\n    max_auth_tries: -1\n", SSH{}, "f.yaml:3:21: error: keso.ssh.max_auth_tries: -1 is not a number of attempts"},
		{"too many tries", "keso:\n  ssh:\n    max_auth_tries: 1000\n", SSH{}, "keso.ssh.max_auth_tries: 1000"},
		{"negative startups", "keso:\n  ssh:\n    max_startups: -5\n", SSH{}, "f.yaml:3:19: error: keso.ssh.max_startups: -5"},
		{"grace not a duration", "keso:\n  ssh:\n    login_grace_time: 2 minutes\n", SSH{}, "keso.ssh.login_grace_time: \"2 minutes\" is not a positive duration"},
		{"grace forever", "keso:\n  ssh:\n    login_grace_time: 0s\n", SSH{}, "there is no 0 for \"forever\""},
		{"idle negative", "keso:\n  ssh:\n    idle_timeout: -1m\n", SSH{}, "keso.ssh.idle_timeout: \"-1m\" is not a duration"},
		{"remote forwarding", "keso:\n  ssh:\n    allow_tcp_forwarding: remote\n    allow_agent_forwarding: true\n", SSH{AllowTCPForwarding: "remote", AllowAgentForwarding: true}, ""},
		{"unquoted yes", "keso:\n  ssh:\n    allow_tcp_forwarding: yes\n", SSH{AllowTCPForwarding: "yes"}, ""},
		{"unknown forwarding", "keso:\n  ssh:\n    allow_tcp_forwarding: everything\n", SSH{}, "keso.ssh.allow_tcp_forwarding: \"everything\": want local"},
		{"bad port kept out", "keso:\n  ssh:\n    port: 70000\n", SSH{}, "keso.ssh.port: 70000 is not a TCP port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := LoadFile("f.yaml", []byte(tt.yaml))
			errs := r.Diagnostics.Errors()
			switch {
			case tt.err == "" && len(errs) > 0:
				t.Errorf("got errors %v, want none", errs)
			case tt.err != "" && (len(errs) != 1 || !strings.Contains(errs[0].String(), tt.err)):
				t.Errorf("got errors %v, want one containing %q", errs, tt.err)
			}
			if r.Config.Keso.SSH == nil {
				t.Fatalf("keso.ssh: got nil, want %+v", tt.want)
			}
			if got := *r.Config.Keso.SSH; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("keso.ssh: got %+v, want %+v", got, tt.want)
			}
		})
	}
}
