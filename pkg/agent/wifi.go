package agent

import (
	"context"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/host"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/wifi"
)

// joinWiFi runs the wifi phase (pkg/wifi): it starts wpa_supplicant for
// the config's wifi: networks on the first wireless link and waits a
// bounded time for it to associate. It returns the config the network
// phase applies: an explicit keso.network block gains the Wi-Fi link with
// DHCP (optional); without one the default DHCPs the first link with a
// carrier, which is the associated Wi-Fi link when no cable is plugged in.
// Call it just before the network phase.
func (a *Agent) joinWiFi(ctx context.Context) cloudconfig.Config {
	var res wifi.Result
	a.phase("wifi", func(rec *phase.Recorder) {
		ctl := host.WPACtrl{Dir: a.FS.Path(wifi.CtrlDir), LocalDir: a.FS.Path("/run/keso")}
		res = wifi.Run(ctx, a.cfg, a.FS, a.Host, ctl, a.mods, a.Log, wifi.Options{}, rec)
	})
	if res.Service != nil {
		a.started = append(a.started, res.Service)
	}
	return wifi.Network(a.cfg, res.Interface)
}
