package agent

import (
	"testing"
	"time"

	"github.com/keso-os/keso/pkg/k3s"
)

func TestCannotPass(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	deadline := t0.Add(210 * time.Second)
	const stable = 90 * time.Second
	for _, c := range []struct {
		name string
		now  time.Time
		h    k3s.Health
		want bool
	}{
		{"running since the start", t0.Add(30 * time.Second), k3s.Health{Running: true, StartedAt: t0}, false},
		{"restarted early enough", t0.Add(70 * time.Second), k3s.Health{Running: true, Restarts: 1, StartedAt: t0.Add(65 * time.Second)}, false},
		{"restarted with exactly stable left", t0.Add(125 * time.Second), k3s.Health{Running: true, Restarts: 2, StartedAt: t0.Add(120 * time.Second)}, false},
		{"restarted too late", t0.Add(125 * time.Second), k3s.Health{Running: true, Restarts: 2, StartedAt: t0.Add(121 * time.Second)}, true},
		{"down, next start in time", t0.Add(100 * time.Second), k3s.Health{Restarts: 1, NextStart: t0.Add(110 * time.Second)}, false},
		{"down, next start too late", t0.Add(100 * time.Second), k3s.Health{Restarts: 1, NextStart: t0.Add(130 * time.Second)}, true},
		{"down, no start planned, too late", t0.Add(130 * time.Second), k3s.Health{Restarts: 3}, true},
		{"stopped for shutdown", t0.Add(200 * time.Second), k3s.Health{Stopped: true}, false},
	} {
		got, why := cannotPass(c.now, deadline, c.h, stable)
		if got != c.want {
			t.Errorf("%s: cannotPass = %v (%q), want %v", c.name, got, why, c.want)
		}
		if got && why == "" {
			t.Errorf("%s: no reason given", c.name)
		}
	}
}
