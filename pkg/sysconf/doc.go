// Package sysconf applies the local-system phases of the system stage, each
// a pure planner plus a thin applier that writes through a root-prefixed FS
// (host.FS) and reports to a *phase.Recorder: one line per change, one
// failure per config value that could not be applied (named by its config
// path, which the Recorder maps to file:line), never stopping at the first.
// Running a phase twice changes nothing the second time.
//
// Entry points, in the order the system stage should call them (modules
// before sysctl, so that net.bridge.* exists once br_netfilter is loaded;
// disks and users before files, so that write_files can land on a data
// disk and be owned by rancher):
//
//	name := sysconf.Hostname(cfg, fsys, kernel, rec)   // /etc/hostname, /etc/hosts, sethostname(2)
//	sysconf.Modules(cfg, fsys, loader, rec)            // finit_module with parameters, deps from modules.dep
//	sysconf.Sysctl(cfg, fsys, rec)                     // /proc/sys/…
//	datadisk.Apply(cfg, fsys, host.Linux{}, rec)       // package datadisk: keso.disks
//	env := sysconf.Environment(cfg, fsys, rec)         // /etc/environment; the map is for k3s and commands
//	users.Apply(cfg, fsys, users.Options{}, rec)       // package users: rancher, password, cached SSH keys
//	sysconf.Files(cfg, fsys, rec)                      // write_files
//	… network up …
//	users.Apply(cfg, fsys, users.Options{Fetcher: users.HTTPFetcher{}}, rec) // refresh github:/gitlab:/URL keys
//
// Every function takes the effective config (cloudconfig.Result.Config),
// host.FS{Root: "/"} on the device, and a *phase.Recorder whose where
// function is cloudconfig.Result.Position. The kernel seams are host.Linux
// (HostnameKernel: Hostname/SetHostname; ModuleLoader: LoadModule).
//
// Choices:
//   - Hostname: the config's hostname; else the one already in /etc/hostname
//     (persistent on installed systems); else "keso-" and six random hex
//     digits, written to /etc/hostname so that it stays. /etc/hosts keeps
//     every line it does not own and gets "127.0.0.1 localhost", "::1
//     localhost ip6-localhost ip6-loopback" when missing and one
//     "127.0.1.1 <name> [<short name>]" line.
//   - Sysctl: a name is written to /proc/sys with dots as separators; as in
//     sysctl(8), a name whose first separator is '/' uses slashes, and in a
//     dotted name a '/' stands for a dot inside a component, so
//     net.ipv4.conf.eth0/100.rp_filter is net/ipv4/conf/eth0.100/rp_filter.
//     Values are compared with the current value (whitespace-normalised)
//     and written only when they differ.
//   - Modules: "name param=value …"; dependencies come from
//     /lib/modules/<release>/modules.dep (pkg/kmod's resolver) and are
//     loaded first without parameters. Loaded modules (/proc/modules) are
//     skipped, and if the config gives parameters that differ from
//     /sys/module/<name>/parameters that is a failure saying to use the
//     kernel command line; a module built into the kernel (modules.builtin) is skipped,
//     and if parameters were given that is a failure that says to put them
//     on the kernel command line as name.param=value.
//   - Environment: /etc/environment with KEY="value" lines, sorted.
//   - Files: write_files decoded with cloudconfig.DecodeContent, written
//     atomically (temp + fsync + rename), owner resolved through the node's
//     /etc/passwd and /etc/group, mode default 0644, parents created 0755.
//     Unchanged files (content, mode and owner) are not touched.
package sysconf
