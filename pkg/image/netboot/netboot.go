// Package netboot renders the iPXE script that netboots a keso image: the
// kernel and initrd come from a base URL, and the root squashfs is fetched
// by keso-init from keso.root= and checked against keso.root_sha256=.
package netboot

import (
	"fmt"
	"strings"
)

// DefaultBase is used when no --netboot-url is given: the DHCP server's
// next-server, where a plain HTTP server serves dist/<arch>/netboot/.
const DefaultBase = "http://${next-server}"

// Script returns boot.ipxe. base is the URL of the netboot folder (no
// trailing slash); a ${keso-base} set before chaining to the script wins.
func Script(base, rootSHA256, cmdline string) []byte {
	base = strings.TrimRight(base, "/")
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	b.WriteString("# keso netboot: kernel + initrd from ${keso-base}; keso-init downloads and verifies the root.\n")
	b.WriteString("dhcp || goto retry\n")
	fmt.Fprintf(&b, "isset ${keso-base} || set keso-base %s\n", base)
	fmt.Fprintf(&b, "kernel ${keso-base}/vmlinuz keso.root=${keso-base}/rootfs.squashfs keso.root_sha256=%s %s\n", rootSHA256, cmdline)
	b.WriteString("initrd ${keso-base}/initrd\n")
	b.WriteString("boot\n")
	b.WriteString(":retry\nsleep 5\ndhcp && chain ${filename} || goto retry\n")
	return []byte(b.String())
}

// ParseScript reads back what Script wrote: the root's sha256 and the
// rest of the kernel command line (after keso.root and keso.root_sha256),
// so a netboot server can write per-machine scripts from the build's
// own. It fails on a script Script did not write.
func ParseScript(script []byte) (rootSHA256, cmdline string, err error) {
	for _, line := range strings.Split(string(script), "\n") {
		rest, ok := strings.CutPrefix(line, "kernel ${keso-base}/vmlinuz keso.root=${keso-base}/rootfs.squashfs keso.root_sha256=")
		if !ok {
			continue
		}
		sum, cmd, _ := strings.Cut(rest, " ")
		if sum == "" {
			return "", "", fmt.Errorf("boot.ipxe: the kernel line has an empty keso.root_sha256")
		}
		return sum, strings.TrimSpace(cmd), nil
	}
	return "", "", fmt.Errorf("boot.ipxe: no kernel line as keso-build writes it (kernel ${keso-base}/vmlinuz keso.root=… keso.root_sha256=…): rebuild the netboot output with keso-build")
}
