package phase

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestRecorder(t *testing.T) {
	var log bytes.Buffer
	r := NewRecorder("files", &log, func(p string) string { return "user-data:4:5" })
	r.Change("write", "/etc/motd", "0644 root:root")
	r.Fail("write_files[1]", errors.New("permission denied"))
	r.Fail("", errors.New("no state partition"))
	rep := r.Done()
	if rep.OK() {
		t.Errorf("OK() = true with failures")
	}
	if got, want := len(rep.Changes), 1; got != want {
		t.Errorf("changes = %d, want %d", got, want)
	}
	if got, want := rep.Failures[0].Where, "user-data:4:5"; got != want {
		t.Errorf("where = %q, want %q", got, want)
	}
	want := "keso: files: write /etc/motd (0644 root:root)\n" +
		"keso: files: user-data:4:5: error: write_files[1]: permission denied\n" +
		"keso: files: error: no state partition\n"
	if got := log.String(); got != want {
		t.Errorf("log =\n%s\nwant\n%s", got, want)
	}
	out, err := MarshalReports([]Report{rep})
	if err != nil || !strings.Contains(string(out), `"phase": "files"`) {
		t.Errorf("MarshalReports = %s, %v", out, err)
	}
}
