package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/keso-os/keso/pkg/bootreport"
)

// report tells the netboot server (keso.report_url) that a step happened
// and ships the console log so far. Without a report URL it does nothing;
// a failed report is a console line, never a stop.
func (a *Agent) report(ctx context.Context, step, detail string) {
	url := a.cfg.Keso.ReportURL
	if url == "" {
		return
	}
	c := bootreport.Client{URL: url}
	if err := c.Step(ctx, bootreport.Step{Step: step, Detail: detail}); err != nil {
		fmt.Fprintf(a.Log, "keso: %v\n", err)
		return
	}
	if a.ring != nil {
		if err := c.Log(ctx, a.ring.Bytes()); err != nil {
			fmt.Fprintf(a.Log, "keso: %v\n", err)
		}
	}
}

// sinceBoot describes how long PID 1 has run, for a report's detail.
func sinceBoot() string {
	if d, ok := sincePID1(); ok {
		return d.Round(100*time.Millisecond).String() + " after PID 1 started"
	}
	return ""
}
