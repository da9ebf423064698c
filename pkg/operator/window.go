package operator

import (
	"fmt"
	"time"

	kesov1 "github.com/keso-os/keso/pkg/apis/keso.io/v1"
)

var weekdays = map[kesov1.Weekday]time.Weekday{
	kesov1.Sunday: time.Sunday, kesov1.Monday: time.Monday, kesov1.Tuesday: time.Tuesday,
	kesov1.Wednesday: time.Wednesday, kesov1.Thursday: time.Thursday, kesov1.Friday: time.Friday,
	kesov1.Saturday: time.Saturday,
}

// Window is a parsed maintenance window.
type Window struct {
	days       map[time.Weekday]bool // empty: every day
	start, end int                   // minutes after midnight
	loc        *time.Location
}

// ParseWindow checks and parses w; nil means "always open" and returns nil.
func ParseWindow(w *kesov1.MaintenanceWindow) (*Window, error) {
	if w == nil {
		return nil, nil
	}
	start, err := parseClock(w.Start)
	if err != nil {
		return nil, fmt.Errorf("window start: %w", err)
	}
	end, err := parseClock(w.End)
	if err != nil {
		return nil, fmt.Errorf("window end: %w", err)
	}
	if start == end {
		return nil, fmt.Errorf("window start and end are both %s: the window would be empty", w.Start)
	}
	loc := time.UTC
	if w.TimeZone != "" {
		if loc, err = time.LoadLocation(w.TimeZone); err != nil {
			return nil, fmt.Errorf("window time zone %q: %w (use an IANA name such as Europe/Berlin)", w.TimeZone, err)
		}
	}
	days := map[time.Weekday]bool{}
	for _, d := range w.Days {
		wd, ok := weekdays[d]
		if !ok {
			return nil, fmt.Errorf("window day %q: want one of Mon Tue Wed Thu Fri Sat Sun", d)
		}
		days[wd] = true
	}
	return &Window{days: days, start: start, end: end, loc: loc}, nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Open reports whether now is inside the window. A window whose end is not
// after its start runs past midnight and belongs to the day it opened on.
func (w *Window) Open(now time.Time) bool {
	if w == nil {
		return true
	}
	t := now.In(w.loc)
	min := t.Hour()*60 + t.Minute()
	if w.start < w.end {
		return w.dayOK(t.Weekday()) && min >= w.start && min < w.end
	}
	// Overnight: the evening part belongs to today, the morning part to yesterday.
	if min >= w.start {
		return w.dayOK(t.Weekday())
	}
	if min < w.end {
		return w.dayOK((t.Weekday() + 6) % 7)
	}
	return false
}

func (w *Window) dayOK(d time.Weekday) bool { return len(w.days) == 0 || w.days[d] }

// NextOpen returns the first minute at or after now when the window is
// open (now itself when it is open), searching up to eight days ahead.
func (w *Window) NextOpen(now time.Time) time.Time {
	if w == nil || w.Open(now) {
		return now
	}
	t := now.In(w.loc).Truncate(time.Minute).Add(time.Minute)
	for i := 0; i < 8*24*60; i++ {
		if w.Open(t) {
			return t
		}
		t = t.Add(time.Minute)
	}
	return now.Add(24 * time.Hour)
}
