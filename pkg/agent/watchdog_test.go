package agent

import (
	"testing"
	"time"
)

func TestProgressStalled(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		mark  bool
		after time.Duration
		want  bool
	}{
		{"never marked (watchdog not armed)", false, time.Hour, false},
		{"just marked", true, 0, false},
		{"within the budget", true, watchdogStall, false},
		{"past the budget", true, watchdogStall + time.Second, true},
	}
	for _, tt := range tests {
		var p progress
		if tt.mark {
			p.mark(t0)
		}
		if got := p.stalled(t0.Add(tt.after), watchdogStall); got != tt.want {
			t.Errorf("%s: stalled = %v, want %v", tt.name, got, tt.want)
		}
	}
}
