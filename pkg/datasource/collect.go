package datasource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/cmdline"
	"github.com/keso-os/keso/pkg/phase"
)

// Paths in the node's root file system.
const (
	// DefaultsPath is the image's built-in config.
	DefaultsPath = "/usr/share/keso/config.yaml"
	// StateConfigPath is /keso/config.yaml on the state partition, which
	// the initrd stage mounts at /keso/state.
	StateConfigPath = "/keso/state/keso/config.yaml"
	// StateConfigDir holds more documents, merged in lexical order.
	StateConfigDir = "/keso/state/keso/config.d"
	// CmdlineName is the source name of the kernel command line.
	CmdlineName = "kernel command line"
	// PhaseName is the phase this package reports as.
	PhaseName = "datasource"
)

// DefaultBudget bounds the time spent on all datasources together.
const DefaultBudget = 90 * time.Second

// Files reads the node's files; host.FS implements it.
type Files interface {
	ReadFile(p string) ([]byte, error)
	ReadDir(p string) ([]fs.DirEntry, error)
}

// Local returns the sources that need no datasource, in merge order: image
// defaults, the state partition's config.yaml, then config.d/*.yaml (and
// *.yml) in lexical order. A file that does not exist is skipped; one that
// cannot be read is returned as an error (and skipped).
func Local(files Files) ([]cloudconfig.Source, []error) {
	var (
		out  []cloudconfig.Source
		errs []error
	)
	add := func(p string) {
		b, err := files.ReadFile(p)
		switch {
		case err == nil:
			out = append(out, cloudconfig.Source{Name: p, Data: b})
		case !errors.Is(err, fs.ErrNotExist):
			errs = append(errs, err) // host.FS names the operation and path
		}
	}
	add(DefaultsPath)
	add(StateConfigPath)
	ents, err := files.ReadDir(StateConfigDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() && !strings.HasPrefix(n, ".") && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		add(path.Join(StateConfigDir, n))
	}
	return out, errs
}

// Canonical datasource names. cloudconfig accepts aliases: nocloud is
// cdrom, aws is ec2, equinix and equinixmetal are packet.
const (
	CDROM            = "cdrom"
	ConfigDrv        = "configdrive"
	OpenStack        = "openstack"
	EC2Name          = "ec2"
	GCPName          = "gcp"
	HetznerName      = "hetzner"
	DigitalOceanName = "digitalocean"
	VultrName        = "vultr"
	ScalewayName     = "scaleway"
	PacketName       = "packet"
	HTTPName         = "http"
	StateName        = "state"
	NoCloudNet       = "nocloud-net"
)

// metadataServices are the datasources that ask a cloud's metadata service
// over the network (openstack after looking for its config drive). Each
// is asked only when data_sources names it.
var metadataServices = []string{OpenStack, EC2Name, GCPName, HetznerName, DigitalOceanName, VultrName, ScalewayName, PacketName}

// DefaultOrder is tried when data_sources is empty. The volume sources cost
// one read of each block device's first sectors, so they are always probed;
// http is added when a config_url is given; the cloud metadata services are
// never probed unless asked for, since a request to 169.254.169.254 on a
// store's LAN only waits for a timeout.
var DefaultOrder = []string{CDROM, ConfigDrv}

var aliases = map[string]string{"nocloud": CDROM, "aws": EC2Name, "equinix": PacketName, "equinixmetal": PacketName}

// Step is one datasource to try.
type Step struct {
	Name string // canonical name: cdrom, configdrive, a metadata service (ec2, gcp, …), http, nocloud-net
	// Path is the config path that asked for it ("keso.data_sources[1]",
	// "keso.config_url"), for failure positions; "" for a default.
	Path string
	// URL is the address for http and nocloud-net.
	URL string
}

// Plan decides which datasources to try, in order, from the data_sources
// list, the config_url and the kernel command line (for NoCloud's
// `ds=nocloud;s=URL` form). It is pure.
//
//   - An empty list means DefaultOrder.
//   - "state" is accepted and ignored: the state partition is always read.
//   - Duplicates (after aliases) are dropped.
//   - "http" without a config_url is a problem, returned in problems.
//   - A config_url is always fetched: http is appended when not listed.
//   - A `ds=nocloud;s=URL` (or nocloud-net) kernel parameter adds a
//     nocloud-net step after the volume sources.
//   - A name keso does not know is a problem (cloudconfig has refused it
//     already; Plan is pure and says so again).
func Plan(dataSources []string, configURL, nocloudURL string) (steps []Step, problems []Problem) {
	seen := map[string]bool{}
	add := func(s Step) {
		if !seen[s.Name] {
			seen[s.Name] = true
			steps = append(steps, s)
		}
	}
	names := dataSources
	defaulted := len(names) == 0
	if defaulted {
		names = DefaultOrder
	}
	for i, n := range names {
		p := ""
		if !defaulted {
			p = fmt.Sprintf("keso.data_sources[%d]", i)
		}
		n = strings.ToLower(strings.TrimSpace(n))
		if a, ok := aliases[n]; ok {
			n = a
		}
		switch {
		case n == StateName:
			continue
		case n == CDROM || n == ConfigDrv || slices.Contains(metadataServices, n):
			add(Step{Name: n, Path: p})
		case n == HTTPName:
			if configURL == "" {
				problems = append(problems, Problem{Path: p, Err: errors.New("data source http needs keso.config_url (on the kernel command line or in a config file); nothing to fetch")})
				continue
			}
			add(Step{Name: HTTPName, Path: "keso.config_url", URL: configURL})
		default:
			known := append([]string{CDROM, ConfigDrv, HTTPName}, metadataServices...)
			problems = append(problems, Problem{Path: p, Err: fmt.Errorf("unknown data source %q (known: %s)", n, strings.Join(known, ", "))})
		}
	}
	if nocloudURL != "" {
		add(Step{Name: NoCloudNet, URL: nocloudURL})
	}
	if configURL != "" {
		add(Step{Name: HTTPName, Path: "keso.config_url", URL: configURL})
	}
	return steps, problems
}

// Problem is a failure tied to a config path.
type Problem struct {
	Path string
	Err  error
}

// NoCloudURL returns the seed URL of a NoCloud `ds=nocloud;s=URL` (or
// `ds=nocloud-net;s=URL`, or `;seedfrom=URL`) kernel parameter, with a
// trailing slash, or "".
func NoCloudURL(ds string) string {
	parts := strings.Split(ds, ";")
	if len(parts) < 2 || (parts[0] != "nocloud" && parts[0] != "nocloud-net") {
		return ""
	}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if ok && (k == "s" || k == "seedfrom") && (strings.HasPrefix(v, "http://") || strings.HasPrefix(v, "https://")) {
			if !strings.HasSuffix(v, "/") {
				v += "/"
			}
			return v
		}
	}
	return ""
}

// Fetchers are the datasource implementations Collect uses.
type Fetchers struct {
	// ByName maps canonical names (cdrom, configdrive and the metadata
	// services: openstack, ec2, gcp, …) to their fetcher. A missing name is
	// reported as not available.
	ByName map[string]Fetcher
	// HTTP returns the fetcher for a config URL.
	HTTP func(url string) Fetcher
	// NoCloudNet returns the fetcher for a NoCloud seed URL.
	NoCloudNet func(seed string) Fetcher
	// Boot, when set, is where the boot partition (FAT labelled
	// KESO_BOOT, the Raspberry Pi SD card's) is looked for (bootfs.go).
	Boot *Devices
}

// Inputs is what Collect reads.
type Inputs struct {
	Files    Files
	Cmdline  string // the kernel command line (/proc/cmdline)
	Fetchers Fetchers
	// Budget bounds all datasources together (default DefaultBudget).
	Budget time.Duration
	// Log is the console; each thing found or not found is one line.
	Log io.Writer
	// BeforeNetwork, if set, is called once, just before the first network
	// datasource (http, nocloud-net, a metadata service), so that the caller
	// can bring up a default DHCP link only when one is needed. Its error
	// is reported and the network sources are still tried (they retry
	// while the network comes up).
	BeforeNetwork func(ctx context.Context) error
}

// needsNetwork reports whether a datasource is reached over the network.
// openstack reads a config drive first, but may fall back to the network.
func needsNetwork(name string) bool {
	return name == HTTPName || name == NoCloudNet || slices.Contains(metadataServices, name)
}

// Collected is the result of Collect.
type Collected struct {
	// Sources are ready for cloudconfig.Load, in merge order: image
	// defaults < state config.yaml < config.d/* < (per datasource found:
	// its meta-data facts < its user-data) < kernel command line.
	Sources []cloudconfig.Source
	// Meta are the facts from the meta-data of the datasources found (the
	// first datasource that has a fact gives it).
	Meta Meta
	// Found is what each datasource returned, in the order tried.
	Found []Found
	// Local is the load of the sources before the datasources (image
	// defaults, state, command line): the one data_sources was read from.
	Local cloudconfig.Result
	// Report is the datasource phase's report.
	Report phase.Report
}

// Collect gathers config from every source in two steps. First it loads
// the local sources (image defaults, state partition, kernel command line)
// to learn data_sources and config_url; then it queries the datasources
// that Plan picks, within the time budget; and it returns all sources in
// merge order for the final cloudconfig.Load.
//
// The volume and metadata datasources (cdrom, configdrive and the
// metadata services) are tried in order and the first that finds something
// is used, as on k3OS; the http config_url and a nocloud-net seed are
// fetched in addition.
// Each datasource's sources are appended in the order the datasources were
// tried. Config found in a datasource does not change which datasources are
// read (no recursion).
func Collect(ctx context.Context, in Inputs) Collected {
	local, readErrs := Local(in.Files)
	bootSrcs, boot, bootErr := bootSources(ctx, in.Fetchers.Boot)
	local = append(local, bootSrcs...)
	cmd := cloudconfig.Source{Name: CmdlineName, Data: []byte(in.Cmdline), Cmdline: true}
	first := cloudconfig.Load(append(append([]cloudconfig.Source{}, local...), cmd)...)
	rec := phase.NewRecorder(PhaseName, in.Log, func(p string) string {
		if file, line, col, ok := first.Position(p); ok {
			return fmt.Sprintf("%s:%d:%d", file, line, col)
		}
		return ""
	})
	for _, err := range readErrs {
		rec.Fail("", err)
	}
	if bootErr != nil {
		rec.Fail("", bootErr)
	}

	nocloud := ""
	if v, ok := cmdline.Parse(in.Cmdline).Get("ds"); ok {
		nocloud = NoCloudURL(v)
	}
	steps, problems := Plan(first.Config.Keso.DataSources, first.Config.Keso.ConfigURL, nocloud)
	for _, p := range problems {
		rec.Fail(p.Path, p.Err)
	}

	budget := in.Budget
	if budget <= 0 {
		budget = DefaultBudget
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()

	out := Collected{Local: first}
	out.Sources = append(out.Sources, local...)
	if boot != nil {
		rec.Change("found", boot.Origin, describeBoot(boot))
		out.Found = append(out.Found, boot.Found)
		out.Meta = mergeMeta(out.Meta, boot.Meta)
	}
	provider := "" // the volume/metadata datasource that found something
	for _, st := range steps {
		f := in.fetcher(st)
		if f == nil {
			rec.Fail(st.Path, fmt.Errorf("data source %s is not available in this build", st.Name))
			continue
		}
		isProvider := st.Name != HTTPName && st.Name != NoCloudNet
		if isProvider && provider != "" {
			rec.Change("skip", st.Name, "already configured by "+provider)
			continue
		}
		if ctx.Err() != nil {
			rec.Fail(st.Path, fmt.Errorf("data source %s: not tried: the datasource time budget of %s is used up", st.Name, budget))
			continue
		}
		if needsNetwork(st.Name) && in.BeforeNetwork != nil {
			if err := in.BeforeNetwork(ctx); err != nil {
				rec.Fail("", fmt.Errorf("bring up the network for data source %s: %w", st.Name, err))
			}
			in.BeforeNetwork = nil
		}
		found, err := f.Fetch(ctx)
		if found.Origin == "" {
			if errors.Is(err, ErrNotFound) {
				rec.Change("none", st.Name, err.Error())
			} else if err != nil {
				rec.Fail(st.Path, fmt.Errorf("data source %s: %w", st.Name, err))
			}
			continue
		}
		if err != nil {
			// Part of it was read: use it, and report the rest.
			rec.Fail(st.Path, fmt.Errorf("data source %s: %w", st.Name, err))
		}
		if isProvider {
			provider = found.Origin
		}
		rec.Change("found", found.Origin, describeFound(found))
		out.Found = append(out.Found, found)
		if mc := found.Meta.Config(); mc != nil {
			out.Sources = append(out.Sources, cloudconfig.Source{Name: found.MetaName, Data: mc})
		}
		if found.UserData != nil {
			out.Sources = append(out.Sources, cloudconfig.Source{Name: found.UserDataName, Data: found.UserData})
		}
		out.Meta = mergeMeta(out.Meta, found.Meta)
	}
	out.Sources = append(out.Sources, cmd)
	out.Report = rec.Done()
	return out
}

func (in Inputs) fetcher(st Step) Fetcher {
	switch st.Name {
	case HTTPName:
		if in.Fetchers.HTTP != nil {
			return in.Fetchers.HTTP(st.URL)
		}
		return nil
	case NoCloudNet:
		if in.Fetchers.NoCloudNet != nil {
			return in.Fetchers.NoCloudNet(st.URL)
		}
		return nil
	}
	return in.Fetchers.ByName[st.Name]
}

// describeFound is the detail of the "found" line.
func describeFound(f Found) string {
	var parts []string
	if f.UserData != nil {
		kind := "cloud-config"
		if strings.HasPrefix(string(f.UserData), "#!") {
			kind = "script"
		}
		parts = append(parts, fmt.Sprintf("user-data %d bytes (%s)", len(f.UserData), kind))
	} else {
		parts = append(parts, "no user-data")
	}
	if f.Meta.InstanceID != "" {
		parts = append(parts, "instance-id "+f.Meta.InstanceID)
	}
	if f.Meta.Hostname != "" {
		parts = append(parts, "hostname "+f.Meta.Hostname)
	}
	if n := len(f.Meta.PublicKeys); n > 0 {
		parts = append(parts, fmt.Sprintf("%d public key(s)", n))
	}
	return strings.Join(parts, ", ")
}

// mergeMeta fills what a lacks from b.
func mergeMeta(a, b Meta) Meta {
	if a.InstanceID == "" {
		a.InstanceID = b.InstanceID
	}
	if a.Hostname == "" {
		a.Hostname = b.Hostname
	}
	if len(a.PublicKeys) == 0 {
		a.PublicKeys = b.PublicKeys
	}
	return a
}
