package sysconf

import (
	"maps"
	"sort"
	"strings"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/phase"
)

// EnvironmentFile is where the environment phase writes.
const EnvironmentFile = "/etc/environment"

// PlanEnvironment renders /etc/environment: one KEY="value" line per
// variable, sorted, with \, ", $ and ` escaped so that both pam_env-style
// readers and a POSIX shell (". /etc/environment") get the value back.
func PlanEnvironment(env map[string]string) []byte {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by keso from keso.environment at every boot.\n")
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`", "\n", `\n`)
	for _, k := range keys {
		b.WriteString(k + `="` + r.Replace(env[k]) + "\"\n")
	}
	return []byte(b.String())
}

// Environment runs the environment phase and returns the variables for
// k3s and the boot commands.
func Environment(cfg *cloudconfig.Config, fsys FS, rec *phase.Recorder) map[string]string {
	env := maps.Clone(cfg.Keso.Environment)
	if env == nil {
		env = map[string]string{}
	}
	want := PlanEnvironment(env)
	old, err := readOptional(fsys, EnvironmentFile)
	if err != nil {
		rec.Fail("", err)
	}
	if len(env) == 0 && old == nil {
		return env // nothing configured, nothing there: leave /etc alone
	}
	writeIfChanged(fsys, EnvironmentFile, old, want, 0o644, "keso.environment", plural(len(env), "variable"), rec)
	return env
}
