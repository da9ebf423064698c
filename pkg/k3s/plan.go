// Package k3s hands the node to k3s: it turns the cloud-config into k3s's
// command line, environment and /etc/rancher/k3s/config.yaml (Plan, pure),
// prepares the kernel and mounts k3s needs (Prepare: modules, cgroup2,
// shared /), and runs k3s under a Supervisor that restarts it with
// exponential backoff and stops it cleanly at shutdown.
//
// How the config maps (keso's `k3s:` block and k3OS's flat keys merge; when
// both set the same thing, the `k3s:` block wins and the conflict is
// reported):
//
//	keso.k3s.role            → `k3s server|agent`; default server, agent when a
//	                           server URL is set (k3OS: server_url → agent)
//	keso.k3s_args[0]         → the role too, when it is "server" or "agent"
//	                           (k3OS wrote `k3s_args: [server, --disable-agent]`)
//	keso.k3s.server_url,     → config `server`
//	keso.server_url
//	keso.k3s.token,          → config `token` (in the file, mode 0600, not in
//	keso.token                 the environment where /proc would show it)
//	keso.k3s.token_file      → config `token-file`
//	keso.k3s.cluster_init    → config `cluster-init: true` (servers only)
//	keso.labels              → config `node-label` (added to any in k3s.config)
//	keso.taints              → config `node-taint` (added to any in k3s.config)
//	keso.k3s.config          → copied into config.yaml as it is
//	keso.k3s_args,           → appended to the command line, in that order
//	keso.k3s.args
//	keso.environment         → k3s's environment
//	keso.proxy               → HTTP_PROXY, HTTPS_PROXY, NO_PROXY and the
//	                           CONTAINERD_* forms k3s passes to containerd
//
// /var/lib/rancher (k3s's data: images, etcd, certificates) lives under
// /var, which is the state partition on installed systems, so it persists;
// on live and netboot systems /var is tmpfs and k3s starts fresh each boot
// (`keso check` says so).
//
// Wiring in the system stage:
//
//	h := k3s.Plan(result.Config)
//	rec := phase.NewRecorder("k3s", console, where)
//	if err := k3s.Prepare(host.FS{Root: "/"}, host.Linux{}, modules, h, rec); err == nil {
//		sup := &k3s.Supervisor{Argv: h.Argv, Env: h.Env, Log: console,
//			Starter: k3s.ExecStarter{Host: host.Linux{}, Out: k3sLogFile}}
//		go sup.Run(ctx) // cancel ctx at shutdown, then wait for Run to return
//	}
//
// Out should be an *os.File (a log file or the console): k3s's children
// inherit it, and with a pipe the supervisor would wait up to 2 s for them
// after k3s exits.
package k3s

import (
	"bytes"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/keso-os/keso/pkg/cloudconfig"
)

// Paths on the node.
const (
	Binary     = "/usr/local/bin/k3s"
	ConfigFile = "/etc/rancher/k3s/config.yaml"
	DataDir    = "/var/lib/rancher"
)

// DefaultPath is PATH for k3s (it prepends its own bin directory).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Problem is something in the config the handoff could not honour as
// written; Path is the config path to report it against.
type Problem struct {
	Path string `json:"path"`
	Msg  string `json:"message"`
}

func (p Problem) Error() string { return p.Msg }

// Handoff is what the node hands to k3s.
type Handoff struct {
	Role       string    // "server" or "agent"
	Argv       []string  // Binary, role, arguments
	Env        []string  // KEY=value, sorted by key
	ConfigYAML []byte    // content of ConfigFile
	TokenFile  string    // the token file k3s reads, if any
	Problems   []Problem // what was dropped or overridden, and why
}

// Plan decides k3s's command line, environment and config file from the
// effective cloud-config. It is pure.
func Plan(cfg cloudconfig.Config) Handoff {
	var h Handoff
	problem := func(path, format string, args ...any) {
		h.Problems = append(h.Problems, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	sys := cfg.Keso
	k := cloudconfig.K3s{}
	if sys.K3s != nil {
		k = *sys.K3s
	}

	// k3OS: a leading "server" or "agent" in k3s_args is the subcommand.
	flatArgs := slices.Clone(sys.K3sArgs)
	argsRole := ""
	if len(flatArgs) > 0 && (flatArgs[0] == "server" || flatArgs[0] == "agent") {
		argsRole, flatArgs = flatArgs[0], flatArgs[1:]
	}

	pick := func(name, structured, flat string) string {
		if structured != "" && flat != "" && structured != flat {
			problem("keso."+name, "keso.k3s.%s and keso.%s differ; using keso.k3s.%s (%q)", name, name, name, redact(name, structured))
		}
		if structured != "" {
			return structured
		}
		return flat
	}
	serverURL := pick("server_url", k.ServerURL, sys.ServerURL)
	token := pick("token", k.Token, sys.Token)
	tokenFile := k.TokenFile
	if token != "" && tokenFile != "" {
		problem("keso.k3s.token_file", "both a token and token_file are set; using the token, ignoring token_file %s", tokenFile)
		tokenFile = ""
	}

	role := k.Role
	switch {
	case role != "" && argsRole != "" && role != argsRole:
		problem("keso.k3s_args", "k3s_args starts with %q but keso.k3s.role is %q; using %q", argsRole, role, role)
	case role == "":
		role = argsRole
	}
	if role == "" {
		role = "server"
		if serverURL != "" {
			role = "agent"
		}
	}
	h.Role = role
	clusterInit := k.ClusterInit
	if role == "agent" {
		if serverURL == "" {
			problem("keso.k3s.role", "an agent needs a server URL (keso.k3s.server_url or keso.server_url); k3s will not start without one")
		}
		if clusterInit {
			problem("keso.k3s.cluster_init", "cluster_init is for servers; ignored for an agent")
			clusterInit = false
		}
	}
	if clusterInit && serverURL != "" {
		problem("keso.k3s.cluster_init", "cluster_init starts a new cluster but server_url joins %s; ignoring cluster_init", serverURL)
		clusterInit = false
	}

	// config.yaml: k3s.config as it is, then what keso sets.
	conf := map[string]any{}
	maps.Copy(conf, k.Config)
	set := func(key string, v any, path string) {
		if old, ok := conf[key]; ok && !reflect.DeepEqual(old, v) {
			problem("keso.k3s.config."+key, "keso.k3s.config.%s is overridden by %s", key, path)
		}
		conf[key] = v
	}
	if serverURL != "" {
		set("server", serverURL, "the server URL")
	}
	if token != "" {
		set("token", token, "the token")
	}
	h.TokenFile = tokenFile
	if tokenFile != "" {
		set("token-file", tokenFile, "keso.k3s.token_file")
	}
	if clusterInit {
		set("cluster-init", true, "keso.k3s.cluster_init")
	}
	var labels []string
	for _, key := range slices.Sorted(maps.Keys(sys.Labels)) {
		labels = append(labels, key+"="+sys.Labels[key])
	}
	appendList(conf, "node-label", labels)
	appendList(conf, "node-taint", sys.Taints)

	h.Argv = append([]string{Binary, role}, flatArgs...)
	h.Argv = append(h.Argv, k.Args...)

	// Environment: base < keso.environment < proxy.
	env := map[string]string{"PATH": DefaultPath, "HOME": "/root"}
	for key, v := range sys.Environment {
		env[key] = v
	}
	if p := sys.Proxy; p != nil {
		setEnv := func(key, v string) {
			if v == "" {
				return
			}
			if old, ok := sys.Environment[key]; ok && old != v {
				problem("keso.environment."+key, "keso.environment.%s is overridden by keso.proxy", key)
			}
			env[key] = v
		}
		for _, prefix := range []string{"", "CONTAINERD_"} {
			setEnv(prefix+"HTTP_PROXY", p.HTTPProxy)
			setEnv(prefix+"HTTPS_PROXY", p.HTTPSProxy)
			setEnv(prefix+"NO_PROXY", strings.Join(p.NoProxy, ","))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(env)) {
		h.Env = append(h.Env, key+"="+env[key])
	}

	var out bytes.Buffer
	out.WriteString("# Written by keso at boot from the cloud-config; edits here are replaced at the next boot.\n")
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(conf); err != nil { // only for values yaml cannot encode; k.Config came from YAML
		problem("keso.k3s.config", "cannot encode the k3s config: %v", err)
	}
	enc.Close()
	h.ConfigYAML = out.Bytes()
	sort.SliceStable(h.Problems, func(i, j int) bool { return h.Problems[i].Path < h.Problems[j].Path })
	return h
}

// appendList adds items to the list at conf[key] (a YAML list or a single
// string there becomes a list).
func appendList(conf map[string]any, key string, items []string) {
	if len(items) == 0 {
		return
	}
	var list []any
	switch old := conf[key].(type) {
	case nil:
	case []any:
		list = slices.Clone(old)
	default:
		list = []any{old}
	}
	for _, it := range items {
		list = append(list, it)
	}
	conf[key] = list
}

func redact(name, v string) string {
	if name == "token" {
		return "…"
	}
	return v
}

// Setting returns what k3s will see for a flag of its config (name without
// dashes, e.g. "node-name"): the last --name VALUE or --name=VALUE on the
// command line, else the config file's key, else the environment variable
// env (k3s's K3S_… form, "" for none), as k3s resolves them. A flag
// without a value (a boolean: --disable-agent) is "true".
func (h Handoff) Setting(name, env string) (string, bool) {
	val, found := "", false
	for i := 2; i < len(h.Argv); i++ {
		a := h.Argv[i]
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			val, found = v, true
		} else if a == "--"+name {
			// A boolean flag stands alone (or before the next flag).
			val, found = "true", true
			if i+1 < len(h.Argv) && !strings.HasPrefix(h.Argv[i+1], "-") {
				val = h.Argv[i+1]
				i++
			}
		}
	}
	if found {
		return val, true
	}
	var conf map[string]any
	if yaml.Unmarshal(h.ConfigYAML, &conf) == nil {
		if v, ok := conf[name]; ok && v != nil {
			return fmt.Sprint(v), true
		}
	}
	if env != "" {
		for _, kv := range h.Env {
			if v, ok := strings.CutPrefix(kv, env+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

// NodeName is the name k3s registers the node under: --node-name (or the
// config's node-name, or K3S_NODE_NAME), else the host name in lower case,
// as the kubelet does.
func (h Handoff) NodeName(hostname string) string {
	if v, ok := h.Setting("node-name", "K3S_NODE_NAME"); ok && v != "" {
		return v
	}
	return strings.ToLower(hostname)
}

// RunsKubelet tells whether k3s runs a kubelet: every agent, and a server
// unless --disable-agent is set.
func (h Handoff) RunsKubelet() bool {
	if h.Role != "server" {
		return true
	}
	v, ok := h.Setting("disable-agent", "")
	return !ok || v == "false"
}
