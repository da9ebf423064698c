package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func files(m map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if s, ok := m[p]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
}

func TestParseArgs(t *testing.T) {
	const tok = "K10" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef::abcdef.0123456789abcdef"
	tests := []struct {
		name string
		argv []string
		cfg  map[string]string
		want Args
	}{
		{
			name: "config file only, as keso writes it",
			argv: []string{"agent"},
			cfg: map[string]string{DefaultConfig: "server: https://10.0.2.2:6443\ntoken: " + tok +
				"\nnode-label: [keso.io/fleet=stores]\nnode-taint: dedicated=edge:NoSchedule\n"},
			want: Args{Role: "agent", Server: "https://10.0.2.2:6443", Token: tok, DataDir: DefaultDataDir, Config: DefaultConfig,
				NodeLabels: []string{"keso.io/fleet=stores"}, NodeTaints: []string{"dedicated=edge:NoSchedule"}},
		},
		{
			name: "command line wins, node-label+ adds, short flags and = forms",
			argv: []string{"agent", "-s", "https://a:1", "--token=" + tok, "--node-label", "x=1", "--kubelet-arg=v=2", "-d", "/data"},
			cfg:  map[string]string{DefaultConfig: "server: https://b:2\nnode-label: [y=2]\nnode-label+: [z=3]\nnode-name: n1\n"},
			want: Args{Role: "agent", Server: "https://a:1", Token: tok, DataDir: "/data", Config: DefaultConfig, NodeName: "n1",
				NodeLabels: []string{"x=1", "z=3"}, KubeletArg: []string{"v=2"}},
		},
		{
			name: "another config file",
			argv: []string{"agent", "--config", "/etc/k.yaml"},
			cfg:  map[string]string{"/etc/k.yaml": "server: https://c:3\ntoken-file: /t\n"},
			want: Args{Role: "agent", Server: "https://c:3", TokenFile: "/t", DataDir: DefaultDataDir, Config: "/etc/k.yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseArgs(tt.argv, files(tt.cfg))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseArgsRefuses(t *testing.T) {
	tests := []struct {
		argv []string
		cfg  map[string]string
		want string
	}{
		{nil, nil, "usage"},
		{[]string{"server"}, nil, "only joins a server as an agent"},
		{[]string{"agent", "--flannel-backend=none"}, nil, "does not implement"},
		{[]string{"agent"}, map[string]string{DefaultConfig: "write-kubeconfig-mode: 644\n"}, "does not implement"},
		{[]string{"agent", "--token", "x"}, nil, "no server URL"},
		{[]string{"agent", "--server", "https://a"}, nil, "no token"},
		{[]string{"agent", "--config", "/missing"}, nil, "k3s config"},
		{[]string{"agent", "--server"}, nil, "needs a value"},
	}
	for _, tt := range tests {
		_, err := ParseArgs(tt.argv, files(tt.cfg))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseArgs(%q): got %v, want an error with %q", tt.argv, err, tt.want)
		}
	}
}

func TestParseToken(t *testing.T) {
	h := strings.Repeat("ab", 32)
	got, err := ParseToken("K10" + h + "::abc123.0123456789abcdef\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Token{CAHash: h, ID: "abc123", Secret: "0123456789abcdef"}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "abc123.0123456789abcdef", "K10" + h + "::server:pass", "K10" + h[:60] + "::abc123.0123456789abcdef"} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q): no error", bad)
		}
	}
}

func TestKubeletArgv(t *testing.T) {
	a := Args{NodeName: "n1", NodeLabels: []string{"a=1", "b=2"}, NodeTaints: []string{"t=x:NoSchedule"}, KubeletArg: []string{"v=2", "--max-pods=20"}}
	got := strings.Join(KubeletArgv(a, Layout{DataDir: "/d"}), " ")
	for _, want := range []string{"--kubeconfig=/d/agent/kubelet.kubeconfig", "--hostname-override=n1", "--node-labels=a=1,b=2",
		"--register-with-taints=t=x:NoSchedule", "--v=2", "--max-pods=20"} {
		if !strings.Contains(got, want) {
			t.Errorf("kubelet argv %q lacks %q", got, want)
		}
	}
}
