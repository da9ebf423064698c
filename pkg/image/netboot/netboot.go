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
