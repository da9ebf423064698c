package runcmd

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/phase"
)

func TestRunRealCommands(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("SKIPPED: no /bin/sh")
	}
	var console, log bytes.Buffer
	rec := phase.NewRecorder("boot_cmd", &log, func(p string) string { return "user-data:" + p })
	cmds := []cloudconfig.Command{
		{Shell: "echo hello; echo oops >&2"},
		{Shell: "exit 3"},
		{Argv: []string{"sleep", "5"}},
		{Argv: []string{"/no/such/binary"}},
		{Argv: []string{"sh", "-c", "printf 'no newline'"}},
	}
	Run(context.Background(), "boot_cmd", cmds, Exec{}, Options{Timeout: 300 * time.Millisecond, Env: []string{"PATH=/usr/bin:/bin"}, Console: &console}, rec)
	rep := rec.Done()
	if got, want := len(rep.Changes), 2; got != want {
		t.Errorf("changes = %d, want %d: %+v", got, want, rep.Changes)
	}
	var failed []string
	for _, f := range rep.Failures {
		failed = append(failed, f.Path)
	}
	if got, want := strings.Join(failed, ","), "boot_cmd[1],boot_cmd[2],boot_cmd[3]"; got != want {
		t.Errorf("failures = %s, want %s (%+v)", got, want, rep.Failures)
	}
	if !strings.Contains(rep.Failures[0].Err, "exit status 3") || !strings.Contains(rep.Failures[1].Err, "timed out") {
		t.Errorf("failure messages = %+v", rep.Failures)
	}
	for _, want := range []string{"boot_cmd: hello\n", "boot_cmd: oops\n", "boot_cmd: no newline\n"} {
		if !strings.Contains(console.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, console.String())
		}
	}
	if !strings.Contains(log.String(), "user-data:boot_cmd[1]: error") {
		t.Errorf("log does not name the config position:\n%s", log.String())
	}
}

func TestArgv(t *testing.T) {
	if got := Argv(cloudconfig.Command{Shell: "a | b"}); strings.Join(got, " ") != "/bin/sh -c a | b" {
		t.Errorf("Argv(shell) = %q", got)
	}
	if got := Argv(cloudconfig.Command{Argv: []string{"ls", "-l"}}); strings.Join(got, " ") != "ls -l" {
		t.Errorf("Argv(argv) = %q", got)
	}
}
