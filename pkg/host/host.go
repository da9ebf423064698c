// Package host holds keso-init's real side effects on a Linux machine:
// mounting, loading kernel modules with finit_module, attaching loop
// devices, bringing links up and asking for a DHCPv4 lease, switching root,
// resizing ext4 and rebooting.
//
// Everything here is a thin wrapper around one system call or a short
// sequence of them, with errors that name the operation and the path.
// Packages that decide what to do (pkg/initrd, pkg/systemstage) declare the
// small interfaces they need and get a *Linux in production and a fake in
// unit tests.
package host

// Linux performs real side effects on the running kernel. The zero value is
// ready to use.
type Linux struct{}
