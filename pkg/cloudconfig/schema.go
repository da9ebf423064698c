package cloudconfig

import "time"

// Config is one cloud-config document, or the effective merge of several.
// The top-level keys are k3OS's. Everything under `k3os:` is accepted under
// `keso:` too; when a document has both blocks, `keso:` wins key by key.
type Config struct {
	// SSHAuthorizedKeys are public keys for the `rancher` user. Besides
	// literal keys, k3OS's forms `github:USER`, `gitlab:USER` and an
	// `https://` URL are fetched when the network is up.
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty"`
	// WriteFiles are files written before the boot commands run.
	WriteFiles []File `yaml:"write_files,omitempty"`
	// Hostname of the node (RFC 1123); also written to /etc/hosts.
	Hostname string `yaml:"hostname,omitempty"`
	// InitCmd runs before the network is configured.
	InitCmd []Command `yaml:"init_cmd,omitempty"`
	// BootCmd runs after local setup (files, sysctls, modules, disks).
	BootCmd []Command `yaml:"boot_cmd,omitempty"`
	// RunCmd runs after the network is up and k3s has been started.
	RunCmd []Command `yaml:"run_cmd,omitempty"`
	// Keso is the system block. In YAML it may be written `keso:` or, as in
	// k3OS, `k3os:`.
	Keso System `yaml:"keso,omitempty"`
}

// File is one entry of write_files.
type File struct {
	// Path is absolute, inside the node's root.
	Path string `yaml:"path"`
	// Content is the file's content, encoded as Encoding says.
	Content string `yaml:"content,omitempty"`
	// Encoding is "" (plain), "b64"/"base64", "gz"/"gzip" or
	// "gz+b64"/"gzip+base64".
	Encoding string `yaml:"encoding,omitempty"`
	// Owner is "user", "user:group" or numeric ids; default root:root.
	Owner string `yaml:"owner,omitempty"`
	// Permissions is an octal mode such as "0644" (the default).
	Permissions string `yaml:"permissions,omitempty"`
}

// Command is one entry of init_cmd, boot_cmd or run_cmd: either a shell
// command line (a YAML string, run with `sh -c`) or an argv list (a YAML list
// of strings, run without a shell).
type Command struct {
	Shell string
	Argv  []string
}

// System is the `k3os:` / `keso:` block.
type System struct {
	// DataSources are tried in order for user-data: cdrom (NoCloud
	// `cidata`), configdrive (OpenStack `config-2`), openstack, the cloud
	// metadata services of k3OS's list (aws/ec2, gcp, digitalocean,
	// hetzner, packet (also equinix, equinixmetal), scaleway, vultr), http
	// (keso.config_url), state.
	DataSources []string `yaml:"data_sources,omitempty"`
	// Modules are kernel modules to load, each "name [param=value ...]".
	Modules []string `yaml:"modules,omitempty"`
	// Sysctl maps a sysctl name (dots or slashes) to its value.
	Sysctl map[string]string `yaml:"sysctl,omitempty"`
	// NTPServers set the clock before k3s starts (host names or IPs).
	NTPServers []string `yaml:"ntp_servers,omitempty"`
	// DNSNameservers are written to /etc/resolv.conf (IP addresses).
	DNSNameservers []string `yaml:"dns_nameservers,omitempty"`
	// Wifi networks to join with the onboard Wi-Fi.
	Wifi []Wifi `yaml:"wifi,omitempty"`
	// Password of the `rancher` user for the console: plain text or a
	// crypt(3) hash ("$6$…").
	Password string `yaml:"password,omitempty"`
	// ServerURL makes the node a k3s agent joining this server (k3OS).
	ServerURL string `yaml:"server_url,omitempty"`
	// Token is the k3s cluster token (k3OS).
	Token string `yaml:"token,omitempty"`
	// Labels are node labels given to k3s.
	Labels map[string]string `yaml:"labels,omitempty"`
	// Taints are node taints, "key=value:Effect".
	Taints []string `yaml:"taints,omitempty"`
	// K3sArgs are extra arguments to `k3s server|agent` (k3OS).
	K3sArgs []string `yaml:"k3s_args,omitempty"`
	// Environment is set for k3s and the boot commands.
	Environment map[string]string `yaml:"environment,omitempty"`
	// Install configures `keso install` and the silent install at boot.
	Install *Install `yaml:"install,omitempty"`

	// ConfigURL (keso) fetches more user-data over HTTP(S) at boot; the
	// kernel command line form is keso.config_url=URL.
	ConfigURL string `yaml:"config_url,omitempty"`
	// ReportURL (keso) is where the boot agent reports its progress
	// (installed, k3s started) and posts its boot log: the netboot server
	// (`keso-build netboot serve`) sets it on the kernel command line.
	ReportURL string `yaml:"report_url,omitempty"`
	// Network (keso) is declarative interface configuration.
	Network *Network `yaml:"network,omitempty"`
	// Disks (keso) are data disks to format, mount and grow.
	Disks []Disk `yaml:"disks,omitempty"`
	// Proxy (keso) is the HTTP proxy for k3s and containerd.
	Proxy *Proxy `yaml:"proxy,omitempty"`
	// K3s (keso) is the structured k3s configuration.
	K3s *K3s `yaml:"k3s,omitempty"`
	// SSH (keso) configures the built-in SSH server.
	SSH *SSH `yaml:"ssh,omitempty"`
	// Upgrade (keso) configures where upgrades come from and who signs them.
	Upgrade *Upgrade `yaml:"upgrade,omitempty"`
}

// Wifi is one wireless network (WPA2-PSK).
type Wifi struct {
	Name       string `yaml:"name"`
	Passphrase string `yaml:"passphrase,omitempty"`
}

// Install is k3OS's install block, unchanged.
type Install struct {
	// ForceEFI installs an EFI boot even when booted by BIOS.
	ForceEFI bool `yaml:"force_efi,omitempty"`
	// Device is the target disk, e.g. /dev/sda.
	Device string `yaml:"device,omitempty"`
	// ConfigURL is a URL or file whose config is saved on the installed
	// system as /keso/config.yaml.
	ConfigURL string `yaml:"config_url,omitempty"`
	// Silent installs without asking.
	Silent bool `yaml:"silent,omitempty"`
	// ISOURL is where to get the image to install (k3OS); keso installs the
	// running image when empty.
	ISOURL string `yaml:"iso_url,omitempty"`
	// PowerOff powers the machine off after installing instead of rebooting.
	PowerOff bool `yaml:"power_off,omitempty"`
	// NoFormat installs into existing partitions without repartitioning.
	NoFormat bool `yaml:"no_format,omitempty"`
	// Debug adds keso.debug to the installed kernel command line.
	Debug bool `yaml:"debug,omitempty"`
	// TTY is the console for the installed system, e.g. ttyS0.
	TTY string `yaml:"tty,omitempty"`
}

// Network is keso's declarative network configuration. Interfaces not
// listed are left alone, except that with no network block at all the
// first interface with a carrier gets DHCP (k3OS behaviour).
type Network struct {
	// Interfaces configure physical links, matched by name or MAC.
	Interfaces []Interface `yaml:"interfaces,omitempty"`
	// VLANs are 802.1Q links on top of an interface or bond.
	VLANs []VLAN `yaml:"vlans,omitempty"`
	// Bonds aggregate interfaces.
	Bonds []Bond `yaml:"bonds,omitempty"`
	// WaitOnline is how long boot waits for the links that are not
	// optional to come up, as a Go duration ("60s"; default 60s).
	WaitOnline string `yaml:"wait_online,omitempty"`
}

// Addressing is what every kind of link can be given.
type Addressing struct {
	// DHCP runs a DHCPv4 client on the link.
	DHCP bool `yaml:"dhcp,omitempty"`
	// IPv6RA accepts IPv6 router advertisements (SLAAC), done by the kernel.
	IPv6RA bool `yaml:"ipv6_ra,omitempty"`
	// Addresses are static addresses in CIDR form ("192.168.1.10/24").
	Addresses []string `yaml:"addresses,omitempty"`
	// Gateway is the default route's next hop.
	Gateway string `yaml:"gateway,omitempty"`
	// Routes are extra static routes.
	Routes []Route `yaml:"routes,omitempty"`
	// DNS are name servers learnt from this link (IP addresses).
	DNS []string `yaml:"dns,omitempty"`
	// MTU of the link (68–65535); 0 keeps the default.
	MTU int `yaml:"mtu,omitempty"`
	// Optional links are not waited for at boot.
	Optional bool `yaml:"optional,omitempty"`
}

// Interface configures one physical link.
type Interface struct {
	// Name is the kernel name (eth0); a trailing * matches a prefix (en*).
	Name string `yaml:"name,omitempty"`
	// MAC matches the link by hardware address instead of by name.
	MAC        string `yaml:"mac,omitempty"`
	Addressing `yaml:",inline"`
}

// VLAN is an 802.1Q link.
type VLAN struct {
	// Name of the new link; default "<link>.<id>".
	Name string `yaml:"name,omitempty"`
	// Link is the parent interface or bond.
	Link string `yaml:"link"`
	// ID is the VLAN id, 1–4094.
	ID         int `yaml:"id"`
	Addressing `yaml:",inline"`
}

// Bond aggregates interfaces into one link.
type Bond struct {
	Name string `yaml:"name"`
	// Mode is one of balance-rr, active-backup, balance-xor, broadcast,
	// 802.3ad, balance-tlb, balance-alb (default active-backup).
	Mode string `yaml:"mode,omitempty"`
	// Interfaces are the member links, by name.
	Interfaces []string `yaml:"interfaces"`
	// MIIMon is the link monitoring interval in ms (default 100).
	MIIMon     int `yaml:"miimon,omitempty"`
	Addressing `yaml:",inline"`
}

// Route is a static route.
type Route struct {
	// To is the destination in CIDR form ("default" means 0.0.0.0/0).
	To string `yaml:"to"`
	// Via is the next hop.
	Via string `yaml:"via,omitempty"`
	// Metric of the route.
	Metric int `yaml:"metric,omitempty"`
}

// Disk is a data disk.
type Disk struct {
	// Device is the block device (/dev/vdb, /dev/disk/by-id/…); or
	Device string `yaml:"device,omitempty"`
	// Label selects the device by its file-system label instead.
	Label string `yaml:"label,omitempty"`
	// Filesystem is the file system to create; only ext4.
	Filesystem string `yaml:"filesystem,omitempty"`
	// Format creates the file system when the device has none. A device
	// that already has a file system is never formatted unless Force.
	Format bool `yaml:"format,omitempty"`
	// Force formats even over an existing file system (destroys data).
	Force bool `yaml:"force,omitempty"`
	// FSLabel is the label given when formatting.
	FSLabel string `yaml:"fs_label,omitempty"`
	// Mount is where to mount it (absolute path).
	Mount string `yaml:"mount,omitempty"`
	// Options are mount options.
	Options []string `yaml:"options,omitempty"`
	// Grow resizes the file system to fill its device at boot.
	Grow bool `yaml:"grow,omitempty"`
}

// Proxy is the HTTP proxy for k3s, containerd and keso's own downloads.
type Proxy struct {
	HTTPProxy  string `yaml:"http_proxy,omitempty"`
	HTTPSProxy string `yaml:"https_proxy,omitempty"`
	// NoProxy is a list of hosts, domains and CIDRs reached directly.
	NoProxy []string `yaml:"no_proxy,omitempty"`
}

// K3s is keso's structured k3s configuration. It is written to
// /etc/rancher/k3s/config.yaml; k3OS's flat keys still work and are merged in.
type K3s struct {
	// Role is server or agent; default server, or agent when ServerURL is set.
	Role string `yaml:"role,omitempty"`
	// ClusterInit starts a new HA cluster with embedded etcd.
	ClusterInit bool `yaml:"cluster_init,omitempty"`
	// ServerURL joins an existing server (https://host:6443).
	ServerURL string `yaml:"server_url,omitempty"`
	// Token is the cluster token; TokenFile names a file that holds it.
	Token     string `yaml:"token,omitempty"`
	TokenFile string `yaml:"token_file,omitempty"`
	// Version pins the k3s version the node must run (e.g. v1.31.4+k3s1).
	Version string `yaml:"version,omitempty"`
	// Args are extra command-line arguments.
	Args []string `yaml:"args,omitempty"`
	// Config is copied into k3s's config.yaml as it is.
	Config map[string]any `yaml:"config,omitempty"`
}

// SSH configures keso's SSH server.
type SSH struct {
	// PasswordAuth allows password logins (off by default).
	PasswordAuth bool `yaml:"password_auth,omitempty"`
	// Port to listen on (default 22).
	Port int `yaml:"port,omitempty"`
	// RootLogin lets the ssh_authorized_keys log in as root too.
	RootLogin bool `yaml:"root_login,omitempty"`
	// MaxAuthTries is how many failed log-in attempts a connection gets
	// before it is closed (default 6, as OpenSSH's MaxAuthTries).
	MaxAuthTries int `yaml:"max_auth_tries,omitempty"`
	// LoginGraceTime closes a connection that has not logged in within it
	// (a duration; default 2m, as OpenSSH's LoginGraceTime).
	LoginGraceTime string `yaml:"login_grace_time,omitempty"`
	// MaxStartups is how many connections may be logging in at once; more
	// are closed at once (default 10, as OpenSSH's MaxStartups).
	MaxStartups int `yaml:"max_startups,omitempty"`
	// IdleTimeout closes a logged-in connection that has carried no data
	// either way for that long (a duration; default: never).
	IdleTimeout string `yaml:"idle_timeout,omitempty"`
	// AllowTCPForwarding is "local" (ssh -L, the default), "remote"
	// (ssh -R only), "all" (or "yes": both) or "no".
	AllowTCPForwarding string `yaml:"allow_tcp_forwarding,omitempty"`
	// AllowAgentForwarding allows ssh -A (off by default).
	AllowAgentForwarding bool `yaml:"allow_agent_forwarding,omitempty"`
}

// Health gate defaults (Upgrade.GateTimes).
const (
	DefaultHealthTimeout = 10 * time.Minute
	DefaultHealthStable  = 2 * time.Minute
)

// GateTimes are the trial's health gate's bounds: how long a try may take
// to become healthy, and how long k3s must have run without exiting
// before it counts (health_stable, else the default or a third of the
// timeout, whichever is shorter). Invalid values were dropped by
// Validate; a nil Upgrade gives the defaults.
func (u *Upgrade) GateTimes() (timeout, stable time.Duration) {
	timeout = DefaultHealthTimeout
	if u != nil {
		if d, err := time.ParseDuration(u.HealthTimeout); err == nil && d > 0 {
			timeout = d
		}
	}
	stable = min(DefaultHealthStable, timeout/3)
	if u != nil {
		if d, err := time.ParseDuration(u.HealthStable); err == nil && d > 0 && d < timeout {
			stable = d
		}
	}
	return timeout, stable
}

// Upgrade configures keso upgrade.
type Upgrade struct {
	// Channel is an https URL that names the latest version.
	Channel string `yaml:"channel,omitempty"`
	// PublicKeys are extra ed25519 keys (base64 of 32 bytes) trusted to
	// sign images, besides the ones built into the image.
	PublicKeys []string `yaml:"public_keys,omitempty"`
	// HealthTimeout is how long a trial boot of a new version may take to
	// become healthy (k3s running, node Ready) before the agent gives the
	// try up and reboots, as a Go duration (default 10m).
	HealthTimeout string `yaml:"health_timeout,omitempty"`
	// HealthStable is how long k3s must have run without exiting before
	// a trial commits, as a Go duration (default 2m, or a third of
	// health_timeout when that is shorter). A k3s that dies a minute
	// after it starts must not look healthy.
	HealthStable string `yaml:"health_stable,omitempty"`
	// HealthChecks are the user's own checks of a trial boot: commands
	// (a command line run by /bin/sh -c, or an argv list, as in run_cmd)
	// that must each exit 0, within a minute each, before the trial
	// commits. They run after the node is Ready, again on every round of
	// the gate until they pass or health_timeout ends the try.
	HealthChecks []Command `yaml:"health_checks,omitempty"`
}
