package cloudconfig

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestGateTimes(t *testing.T) {
	tests := []struct {
		name                string
		u                   *Upgrade
		wantTimeout, wantSt time.Duration
	}{
		{"defaults", nil, 10 * time.Minute, 2 * time.Minute},
		{"short timeout: a third", &Upgrade{HealthTimeout: "30s"}, 30 * time.Second, 10 * time.Second},
		{"explicit stable", &Upgrade{HealthTimeout: "3m30s", HealthStable: "90s"}, 210 * time.Second, 90 * time.Second},
		{"stable not below the timeout is ignored", &Upgrade{HealthTimeout: "1m", HealthStable: "1m"}, time.Minute, 20 * time.Second},
	}
	for _, tt := range tests {
		gotT, gotS := tt.u.GateTimes()
		if gotT != tt.wantTimeout || gotS != tt.wantSt {
			t.Errorf("%s: got %s, %s; want %s, %s", tt.name, gotT, gotS, tt.wantTimeout, tt.wantSt)
		}
	}
}

func TestValidateHealthStable(t *testing.T) {
	tests := []struct {
		yaml, want string
	}{
		{"keso:\n  upgrade:\n    health_stable: soon\n", "is not a positive duration"},
		{"keso:\n  upgrade:\n    health_timeout: 2m\n    health_stable: 3m\n", "not shorter than health_timeout"},
	}
	for _, tt := range tests {
		r := LoadFile("f.yaml", []byte(tt.yaml))
		if !strings.Contains(fmt.Sprint(r.Diagnostics.Errors()), tt.want) || r.Config.Keso.Upgrade.HealthStable != "" {
			t.Errorf("%q: got %v (health_stable %q), want an error with %q and the value dropped", tt.yaml, r.Diagnostics, r.Config.Keso.Upgrade.HealthStable, tt.want)
		}
	}
}
