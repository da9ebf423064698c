package operator

import (
	"testing"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
)

func TestWindowOpen(t *testing.T) {
	berlin := &kesov1.MaintenanceWindow{Start: "01:00", End: "05:00", TimeZone: "Europe/Berlin"}
	night := &kesov1.MaintenanceWindow{Start: "22:00", End: "04:00", Days: []kesov1.Weekday{kesov1.Saturday}}
	tests := []struct {
		name string
		w    *kesov1.MaintenanceWindow
		now  string
		want bool
	}{
		{"no window", nil, "2026-11-25T12:00:00Z", true},
		{"berlin inside (02:30 CET)", berlin, "2026-11-25T01:30:00Z", true},
		{"berlin start inclusive (01:00 CET)", berlin, "2026-11-25T00:00:00Z", true},
		{"berlin end exclusive (05:00 CET)", berlin, "2026-11-25T04:00:00Z", false},
		{"berlin outside (13:00 CET)", berlin, "2026-11-25T12:00:00Z", false},
		{"berlin summer time (02:30 CEST)", berlin, "2026-07-01T00:30:00Z", true},
		{"overnight saturday evening", night, "2026-11-28T23:00:00Z", true},  // Sat
		{"overnight sunday morning", night, "2026-11-29T03:00:00Z", true},    // Sun, opened Sat
		{"overnight friday evening", night, "2026-11-27T23:00:00Z", false},   // Fri
		{"overnight saturday morning", night, "2026-11-28T03:00:00Z", false}, // opened Fri
		{"overnight sunday after end", night, "2026-11-29T04:00:00Z", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWindow(tt.w)
			if err != nil {
				t.Fatal(err)
			}
			now, _ := time.Parse(time.RFC3339, tt.now)
			if got := w.Open(now); got != tt.want {
				t.Errorf("Open(%s) = %v, want %v", tt.now, got, tt.want)
			}
		})
	}
}

func TestWindowNextOpen(t *testing.T) {
	w, err := ParseWindow(&kesov1.MaintenanceWindow{Start: "22:00", End: "04:00", Days: []kesov1.Weekday{kesov1.Saturday}})
	if err != nil {
		t.Fatal(err)
	}
	now, _ := time.Parse(time.RFC3339, "2026-11-25T12:34:56Z") // Wednesday
	got := w.NextOpen(now)
	want, _ := time.Parse(time.RFC3339, "2026-11-28T22:00:00Z")
	if !got.Equal(want) {
		t.Errorf("NextOpen = %s, want %s", got, want)
	}
}

func TestParseWindowErrors(t *testing.T) {
	for _, w := range []kesov1.MaintenanceWindow{
		{Start: "1:00", End: "05:00"},
		{Start: "01:00", End: "25:00"},
		{Start: "01:00", End: "01:00"},
		{Start: "01:00", End: "02:00", TimeZone: "Mars/Olympus"},
		{Start: "01:00", End: "02:00", Days: []kesov1.Weekday{"Monday"}},
	} {
		if _, err := ParseWindow(&w); err == nil {
			t.Errorf("ParseWindow(%+v) = nil error, want an error", w)
		}
	}
}
