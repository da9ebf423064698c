// Package kmod is keso's one kernel-module facility on the node: it parses
// the module tables under /lib/modules/<release> (modules.dep,
// modules.alias, modules.builtin) and /proc/modules, resolves a module name
// or an alias to the files to load (dependencies first), and loads them
// through a small seam (Sys; host.Linux implements it with finit_module and
// delete_module).
//
// The initrd stage, the modules phase (pkg/sysconf), the k3s preparation
// (through the agent's Loader), `keso check` and /sbin/modprobe all use it.
// /sbin/modprobe is keso-init itself: run under the name "modprobe" it calls
// Modprobe, so the kernel's request_module() (which runs
// `/sbin/modprobe -q -- <name>`, the path in /proc/sys/kernel/modprobe) can
// autoload veth.ko for a pod's veth pair, nft_* expressions, xt_* matches
// (as ipt_*/ip6t_* aliases), overlay (fs-overlay) and the like.
//
// The builder (pkg/image/kmod) writes modules.dep and modules.alias for the
// modules an image ships; this package only reads them.
package kmod
