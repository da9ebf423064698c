package rack

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ReadEvents reads the state folder's event log.
func ReadEvents(dir string) ([]Event, error) {
	f, err := os.Open(filepath.Join(dir, EventsFile))
	if err != nil {
		return nil, fmt.Errorf("read the netboot server's events: %w (is --state the serve command's?)", err)
	}
	defer f.Close()
	return parseEvents(f)
}

func parseEvents(r io.Reader) ([]Event, error) {
	var out []Event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// A line cut by a crash of the server: skip it, keep the rest.
			continue
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// MachineStatus is one machine's boot as the events tell it.
type MachineStatus struct {
	MAC    string
	Events []Event
}

// First is the time of the machine's first event (power-on, in effect).
func (m MachineStatus) First() time.Time { return m.Events[0].Time }

// Reached returns how long after its first event the machine first
// reached step, and whether it did.
func (m MachineStatus) Reached(step string) (time.Duration, bool) {
	for _, e := range m.Events {
		if e.Step == step {
			return e.Time.Sub(m.First()), true
		}
	}
	return 0, false
}

// Summarize groups events by machine, in the order machines first showed
// up; events of unknown machines are grouped under "?".
func Summarize(events []Event) []MachineStatus {
	var out []MachineStatus
	idx := map[string]int{}
	for _, e := range events {
		key := cmpOr(e.MAC, "?")
		i, ok := idx[key]
		if !ok {
			i = len(out)
			idx[key] = i
			out = append(out, MachineStatus{MAC: key})
		}
		out[i].Events = append(out[i].Events, e)
	}
	return out
}

// Format writes the status as text: a block per machine, a line per step
// with its time after the machine's first event.
func Format(w io.Writer, ms []MachineStatus) {
	for _, m := range ms {
		last := m.Events[len(m.Events)-1]
		head := fmt.Sprintf("%s: %d events, last %s at %s", m.MAC, len(m.Events), last.Step, last.Time.UTC().Format(time.RFC3339))
		if d, ok := m.Reached(StepK3s); ok {
			head += fmt.Sprintf("; k3s started %s after its first request", d.Round(100*time.Millisecond))
		}
		fmt.Fprintln(w, head)
		for _, e := range m.Events {
			fmt.Fprintf(w, "  %+9.1fs  %-9s %s\n", e.Time.Sub(m.First()).Seconds(), e.Step, e.Detail)
		}
	}
}
