package main

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Args is what the fixture takes from k3s's command line and config file.
type Args struct {
	Role       string // "agent" (the only role the fixture plays)
	Server     string
	Token      string
	TokenFile  string
	NodeName   string
	NodeLabels []string
	NodeTaints []string
	KubeletArg []string
	DataDir    string
	Config     string
}

// DefaultDataDir and DefaultConfig are k3s's defaults.
const (
	DefaultDataDir = "/var/lib/rancher/k3s"
	DefaultConfig  = "/etc/rancher/k3s/config.yaml"
)

// flagNames maps each flag k3s spells (long names, the short aliases of
// the ones the fixture honours) to the config key it sets.
var flagNames = map[string]string{
	"server": "server", "s": "server",
	"token": "token", "t": "token",
	"token-file":  "token-file",
	"node-name":   "node-name",
	"node-label":  "node-label",
	"node-taint":  "node-taint",
	"kubelet-arg": "kubelet-arg",
	"data-dir":    "data-dir", "d": "data-dir",
	"config": "config", "c": "config",
}

// ParseArgs reads k3s's argv (without the program name) and the config
// file it names (readFile(path); a missing default config is no error).
// As in k3s, a flag on the command line wins over the same key in the
// file, except that a file key ending in "+" (node-label+) adds to what
// the command line gives. Flags the fixture does not know are refused,
// so a test never believes a flag had an effect it did not have.
func ParseArgs(argv []string, readFile func(string) ([]byte, error)) (Args, error) {
	var a Args
	if len(argv) == 0 || (argv[0] != "agent" && argv[0] != "server") {
		return a, fmt.Errorf("usage: k3s agent|server [flags]: got %q", argv)
	}
	a.Role = argv[0]
	cli := map[string][]string{}
	for i := 1; i < len(argv); i++ {
		arg := argv[i]
		if !strings.HasPrefix(arg, "-") {
			return a, fmt.Errorf("unexpected argument %q (flags only after the role)", arg)
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		key, ok := flagNames[name]
		if !ok {
			return a, fmt.Errorf("flag %q: the real-node fixture does not implement it (it knows %s)", arg, known())
		}
		if !hasVal {
			if i+1 >= len(argv) {
				return a, fmt.Errorf("flag %q needs a value", arg)
			}
			i++
			val = argv[i]
		}
		cli[key] = append(cli[key], val)
	}
	cfgPath := DefaultConfig
	if v := cli["config"]; len(v) > 0 {
		cfgPath = v[len(v)-1]
	}
	file := map[string][]string{}
	add := map[string][]string{}
	b, err := readFile(cfgPath)
	switch {
	case err == nil:
		var raw map[string]any
		if err := yaml.Unmarshal(b, &raw); err != nil {
			return a, fmt.Errorf("k3s config %s: %w", cfgPath, err)
		}
		for k, v := range raw {
			base, plus := strings.CutSuffix(k, "+")
			if _, ok := flagNames[base]; !ok {
				return a, fmt.Errorf("k3s config %s: key %q: the real-node fixture does not implement it (it knows %s)", cfgPath, k, known())
			}
			vals, err := strings_(v)
			if err != nil {
				return a, fmt.Errorf("k3s config %s: key %q: %w", cfgPath, k, err)
			}
			if plus {
				add[base] = append(add[base], vals...)
			} else {
				file[base] = vals
			}
		}
	case os.IsNotExist(err) && len(cli["config"]) == 0:
	default:
		return a, fmt.Errorf("k3s config: %w", err)
	}
	get := func(key string) []string {
		v := file[key]
		if c, ok := cli[key]; ok {
			v = c
		}
		return append(append([]string(nil), v...), add[key]...)
	}
	last := func(key string) string {
		v := get(key)
		if len(v) == 0 {
			return ""
		}
		return v[len(v)-1] // the last one wins, as with urfave/cli

	}
	a.Server, a.Token, a.TokenFile = last("server"), last("token"), last("token-file")
	a.NodeName, a.DataDir, a.Config = last("node-name"), last("data-dir"), cfgPath
	a.NodeLabels, a.NodeTaints, a.KubeletArg = get("node-label"), get("node-taint"), get("kubelet-arg")
	if a.DataDir == "" {
		a.DataDir = DefaultDataDir
	}
	if a.Role == "server" {
		return a, fmt.Errorf("k3s server: the real-node fixture only joins a server as an agent (the test's control plane runs on the host)")
	}
	if a.Server == "" {
		return a, fmt.Errorf("k3s agent: no server URL (--server or `server:` in %s)", cfgPath)
	}
	if a.Token == "" && a.TokenFile == "" {
		return a, fmt.Errorf("k3s agent: no token (--token, --token-file or `token:` in %s)", cfgPath)
	}
	return a, nil
}

func strings_(v any) ([]string, error) {
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case bool, int, float64:
		return []string{fmt.Sprint(v)}, nil
	case []any:
		var out []string
		for _, e := range v {
			s, err := strings_(e)
			if err != nil || len(s) != 1 {
				return nil, fmt.Errorf("want a string or a list of strings, got %v", v)
			}
			out = append(out, s...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a string or a list of strings, got %T", v)
}

func known() string {
	return "--server --token --token-file --node-name --node-label --node-taint --kubelet-arg --data-dir --config"
}
