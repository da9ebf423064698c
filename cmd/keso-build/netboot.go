package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/keso-os/keso/pkg/pxe"
	"github.com/keso-os/keso/pkg/rack"
	"github.com/keso-os/keso/pkg/tftp"
)

// netboot runs `keso-build netboot serve|status`: see docs/netboot.md.
func netboot(args []string) int {
	if len(args) > 0 && args[0] == "status" {
		return netbootStatus(args[1:])
	}
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintln(os.Stderr, "usage: keso-build netboot serve [flags] | keso-build netboot status [flags] (docs/netboot.md)")
		return 2
	}
	fl := flag.NewFlagSet("keso-build netboot serve", flag.ContinueOnError)
	var (
		dir       = fl.String("dir", ".", "folder with default.yaml and machines/<mac>.yaml")
		artifacts = fl.String("artifacts", "dist", "keso-build's output folder (holding <arch>/netboot/)")
		stateDir  = fl.String("state", "", "where the event log, install marks and boot logs go (default DIR/state)")
		iface     = fl.String("iface", "", "the rack network's interface (required)")
		addr      = fl.String("addr", "", "this server's IPv4 address on it (default: the interface's first)")
		port      = fl.Int("http-port", 80, "HTTP port")
		dhcpMode  = fl.String("dhcp", "proxy", "proxy (beside the site's DHCP server), full (hand out addresses on an isolated rack network) or off")
		poolRange = fl.String("range", "", "full mode: addresses to hand out, FIRST-LAST")
		router    = fl.String("router", "", "full mode: the default gateway to hand out")
		dns       = fl.String("dns", "", "full mode: comma-separated DNS servers to hand out")
		ipxeDir   = fl.String("ipxe", "/usr/lib/ipxe", "folder with undionly.kpxe (BIOS) and snponly.efi (x86-64 UEFI): Debian's ipxe package")
		ipxeArm64 = fl.String("ipxe-arm64", "", "an arm64 ipxe.efi (Debian ships none)")
		noMAC     = fl.Bool("no-mac-check", false, "serve configs without checking the client's MAC in the neighbour table (only when the rack is routed to this server: anyone can then read any machine's config)")
	)
	if err := fl.Parse(args[1:]); err != nil {
		return 2
	}
	if err := serve(*dir, *artifacts, *stateDir, *iface, *addr, *port, *dhcpMode, *poolRange, *router, *dns, *ipxeDir, *ipxeArm64, *noMAC); err != nil {
		fmt.Fprintf(os.Stderr, "keso-build netboot serve: %v\n", err)
		return 1
	}
	return 0
}

func serve(dir, artifacts, stateDir, iface, addr string, port int, dhcpMode, poolRange, router, dns, ipxeDir, ipxeArm64 string, noMAC bool) error {
	if iface == "" {
		return errors.New("--iface is required: the interface on the rack network")
	}
	ip, err := ifaceIPv4(iface, addr)
	if err != nil {
		return err
	}
	if stateDir == "" {
		stateDir = filepath.Join(dir, "state")
	}
	state, err := rack.OpenState(stateDir, os.Stdout)
	if err != nil {
		return err
	}
	arches, err := rack.LoadArches(os.DirFS(artifacts))
	if err != nil {
		return err
	}
	if _, err := rack.Lookup(os.DirFS(dir), "00-00-00-00-00-00", "", "amd64"); err != nil {
		return fmt.Errorf("machines folder %s: %w", dir, err)
	}
	// What TFTP and UEFI HTTP boot may hand out, and nothing else.
	bins := map[string]string{}
	for _, f := range []string{pxe.FileBIOS, pxe.FileAMD64EFI} {
		if _, err := os.Stat(filepath.Join(ipxeDir, f)); err == nil {
			bins[f] = filepath.Join(ipxeDir, f)
		}
	}
	if ipxeArm64 != "" {
		bins["arm64/ipxe.efi"] = ipxeArm64
	}
	base := fmt.Sprintf("http://%s:%d", ip, port)
	var nb rack.Neighbors = rack.ProcARP{}
	if noMAC {
		nb = nil
	}
	srv := &rack.Server{Base: base, Machines: os.DirFS(dir), Artifacts: os.DirFS(artifacts), Arches: arches, IPXE: bins, State: state, Neighbors: nb}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errs := make(chan error, 3)
	ln, err := net.Listen("tcp4", fmt.Sprintf("%s:%d", ip, port))
	if err != nil {
		return fmt.Errorf("HTTP: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second}
	go func() { errs <- fmt.Errorf("HTTP: %w", hs.Serve(ln)) }()
	defer hs.Close()

	pc, err := net.ListenPacket("udp4", ip.String()+":69")
	if err != nil {
		return fmt.Errorf("TFTP: %w", err)
	}
	ts := &tftp.Server{
		Open: func(name string) (io.ReaderAt, int64, error) {
			p, ok := bins[name]
			if !ok {
				return nil, 0, fmt.Errorf("%s: not served (only the iPXE binaries are)", name)
			}
			f, err := os.Open(p)
			if err != nil {
				return nil, 0, err
			}
			fi, err := f.Stat()
			if err != nil {
				return nil, 0, err
			}
			return f, fi.Size(), nil // the TFTP server closes it when the transfer ends
		},
		Done: func(tr tftp.Transfer) {
			host, _, _ := net.SplitHostPort(tr.Remote.String())
			mac, _ := rack.ProcARP{}.MAC(host)
			d := fmt.Sprintf("TFTP sent %s (%d bytes, block size %d, %s)", tr.Name, tr.Bytes, tr.Blksize, tr.Took.Round(time.Millisecond))
			var te *tftp.Error
			switch {
			case tr.Err != nil && tr.Bytes == 0 && errors.As(tr.Err, &te) && te.Code == tftp.ErrBadOption:
				// UEFI PXE asks for the size (tsize), then ends that transfer.
				d = fmt.Sprintf("TFTP size of %s asked (the client ended that transfer after the size, as UEFI PXE does)", tr.Name)
			case tr.Err != nil:
				d = fmt.Sprintf("TFTP %s failed after %d bytes: %v", tr.Name, tr.Bytes, tr.Err)
			}
			state.Record(rack.Event{Time: time.Now(), MAC: mac, IP: host, Step: rack.StepIPXE, Detail: d})
		},
	}
	go func() { errs <- fmt.Errorf("TFTP: %w", ts.Serve(ctx, pc)) }()

	if dhcpMode != "off" {
		c := pxe.Config{ServerIP: ip, ScriptURL: base + "/ipxe", HTTPBase: base, HaveArm64EFI: ipxeArm64 != ""}
		switch dhcpMode {
		case "proxy":
			c.Mode = pxe.Proxy
		case "full":
			c.Mode = pxe.Full
			if err := fullDHCP(&c, poolRange, router, dns); err != nil {
				return err
			}
		default:
			return fmt.Errorf("--dhcp %q: expected proxy, full or off", dhcpMode)
		}
		ds, err := pxe.New(c)
		if err != nil {
			return err
		}
		go func() {
			errs <- fmt.Errorf("DHCP: %w", ds.Serve(ctx, iface, func(e pxe.Event) {
				if e.Arch == "" && strings.HasPrefix(e.Detail, "ignored: not a network-boot client") {
					return // the booted OS's own DHCP: not ours to answer, nor news
				}
				mac, _ := rack.NormalMAC(e.MAC.String())
				d := e.Detail
				if e.Arch != "" {
					d = string(e.Arch) + ": " + d
				}
				if e.UUID != "" {
					d += " (uuid " + e.UUID + ")"
				}
				state.Record(rack.Event{Time: time.Now(), MAC: mac, Step: rack.StepDHCP, Detail: d})
			}))
		}()
	}
	fmt.Printf("keso-build netboot serve: %s on %s: HTTP %s, TFTP %s:69, DHCP %s; arches %s; machines %s; state %s\n",
		ip, iface, base, ip, dhcpMode, archList(arches), dir, stateDir)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errs:
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
}

func fullDHCP(c *pxe.Config, poolRange, router, dns string) error {
	first, last, ok := strings.Cut(poolRange, "-")
	c.RangeStart, c.RangeEnd = net.ParseIP(first).To4(), net.ParseIP(last).To4()
	if !ok || c.RangeStart == nil || c.RangeEnd == nil {
		return fmt.Errorf("--range %q: full DHCP needs the addresses to hand out, like 10.0.0.100-10.0.0.199", poolRange)
	}
	c.Netmask = net.CIDRMask(24, 32)
	if router != "" {
		if c.Router = net.ParseIP(router).To4(); c.Router == nil {
			return fmt.Errorf("--router %q is not an IPv4 address", router)
		}
	}
	for _, d := range strings.Split(dns, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		ip := net.ParseIP(d).To4()
		if ip == nil {
			return fmt.Errorf("--dns %q is not an IPv4 address", d)
		}
		c.DNS = append(c.DNS, ip)
	}
	c.LeaseTime = time.Hour
	return nil
}

// ifaceIPv4 returns addr, or the interface's first IPv4 address.
func ifaceIPv4(iface, addr string) (net.IP, error) {
	if addr != "" {
		ip := net.ParseIP(addr).To4()
		if ip == nil {
			return nil, fmt.Errorf("--addr %q is not an IPv4 address", addr)
		}
		return ip, nil
	}
	in, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("--iface %s: %w", iface, err)
	}
	addrs, err := in.Addrs()
	if err != nil {
		return nil, fmt.Errorf("--iface %s: %w", iface, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.To4(), nil
		}
	}
	return nil, fmt.Errorf("--iface %s has no IPv4 address: give it one, or name it with --addr", iface)
}

func archList(m map[string]rack.Arch) string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	return strings.Join(s, ",")
}

// netbootStatus prints what the server recorded, a block per machine.
func netbootStatus(args []string) int {
	fl := flag.NewFlagSet("keso-build netboot status", flag.ContinueOnError)
	stateDir := fl.String("state", "state", "the serve command's --state folder")
	asJSON := fl.Bool("json", false, "print the events as JSON, grouped by machine")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	ev, err := rack.ReadEvents(*stateDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso-build netboot status: %v\n", err)
		return 1
	}
	ms := rack.Summarize(ev)
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ms); err != nil {
			return 1
		}
		return 0
	}
	rack.Format(os.Stdout, ms)
	return 0
}
