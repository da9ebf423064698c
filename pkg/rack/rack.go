// Package rack is the HTTP side and the bookkeeping of keso's netboot
// server (`keso-build netboot serve`): which machine boots in which mode
// with which config, the iPXE scripts that say so, the kernel, initrd and
// root of each architecture, the reports nodes send back, and the status
// of every machine, step by step.
//
// The operator's folder holds a default.yaml and machines/<mac>.yaml (or
// machines/<smbios-uuid>.yaml): keso cloud-configs with one more top-level
// block, netboot:, that the server reads and blanks out before serving the
// rest to the node (the lines stay where they were, so the node's config
// messages name the operator's own line numbers):
//
//	netboot:
//	  mode: install        # live (default), install or local
//	  device: /dev/vda     # install: the disk
//	  hostname: rack-b     # ${hostname}; default keso-<last 6 hex digits of the MAC>
//
// ${mac}, ${hostname}, ${uuid} and ${arch} are replaced everywhere in the
// file; $${ keeps a literal ${. A machine in install mode is served its
// local disk (mode local) once it reported "installed"; deleting
// STATE/installed/<mac> installs it again.
//
// The server gives a machine's config only to a client whose address the
// server's neighbour table (ARP) maps to that MAC: a machine cannot read
// another's config (and its k3s token) unless it forges its MAC on the
// same network. The checks are done by the Neighbors the caller passes.
//
// Side effects: the server's state directory (what each machine was
// served, written atomically) and its listeners.
package rack

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Mode is how a machine boots.
type Mode string

// The modes.
const (
	Live    Mode = "live"    // diskless: the root over HTTP, every boot
	Install Mode = "install" // install to Machine.Device, then boot it
	Local   Mode = "local"   // boot the local disk
)

// Steps, in the order a boot goes through them.
const (
	StepDHCP      = "dhcp"
	StepIPXE      = "ipxe"
	StepKernel    = "kernel"
	StepInitrd    = "initrd"
	StepRoot      = "root"
	StepConfig    = "config"
	StepInstalled = "installed"
	StepK3s       = "k3s"
	StepLog       = "log"
	StepRefused   = "refused"
)

// Event is one line of a machine's boot.
type Event struct {
	Time   time.Time `json:"time"`
	MAC    string    `json:"mac"` // canonical form (NormalMAC); "" when unknown
	IP     string    `json:"ip,omitempty"`
	Step   string    `json:"step"`
	Detail string    `json:"detail,omitempty"`
}

// String is the line the server prints as it happens.
func (e Event) String() string {
	who := e.MAC
	if who == "" {
		who = "?"
	}
	if e.IP != "" {
		who += " (" + e.IP + ")"
	}
	return fmt.Sprintf("%s %s %-9s %s", e.Time.UTC().Format("15:04:05.000"), who, e.Step, e.Detail)
}

// NormalMAC returns mac in the form the server uses in file names and
// URLs, lower-case hex pairs joined by hyphens (iPXE's ${mac:hexhyp}),
// or an error naming what was expected.
func NormalMAC(mac string) (string, error) {
	hw, err := net.ParseMAC(strings.ReplaceAll(mac, "-", ":"))
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("%q is not an Ethernet MAC address (expected six hex pairs, like 52-54-00-12-34-56)", mac)
	}
	return strings.ReplaceAll(hw.String(), ":", "-"), nil
}
