package pxe

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Arch is a client's firmware and CPU, as its option 93 names them.
type Arch string

// The architectures keso boots. Option 93 values (RFC 4578, IANA
// "Processor Architecture Types") map to them in archOf.
const (
	ArchBIOS         Arch = "bios"           // 0: x86 BIOS (PXE ROM)
	ArchAMD64EFI     Arch = "amd64-efi"      // 7, 9: x86-64 UEFI PXE
	ArchARM64EFI     Arch = "arm64-efi"      // 11: arm64 UEFI PXE
	ArchAMD64EFIHTTP Arch = "amd64-efi-http" // 16: x86-64 UEFI HTTP boot
	ArchARM64EFIHTTP Arch = "arm64-efi-http" // 19: arm64 UEFI HTTP boot
)

// The TFTP file names a PXE client is given (relative to the TFTP root),
// and the path of the EFI binary under Config.HTTPBase for HTTP boot.
//
// x86-64 UEFI gets snponly.efi, not ipxe.efi: it drives the NIC through
// the firmware's own network driver (SNP), and it returns to the firmware
// cleanly when a machine's script says "boot the local disk" (Debian 12's
// ipxe.efi hung there under OVMF; snponly.efi went on to the disk).
const (
	FileBIOS         = "undionly.kpxe"
	FileAMD64EFI     = "snponly.efi"
	FileARM64EFI     = "arm64/ipxe.efi"
	HTTPPathAMD64EFI = "/ipxe/snponly.efi"
	HTTPPathARM64EFI = "/ipxe/arm64/ipxe.efi"
)

// The vendor classes (option 60) of network-boot firmware, and what a
// server echoes back.
const (
	VendorPXE  = "PXEClient"
	VendorHTTP = "HTTPClient"
)

// Client is what one request says about the firmware that sent it.
type Client struct {
	VendorClass string // option 60 as sent, e.g. "PXEClient:Arch:00000:UNDI:002001"
	ArchCode    int    // first value of option 93; -1 when the option is absent or short
	IPXE        bool   // user class (option 77) is "iPXE": iPXE itself is asking
}

// ClientOf reads the boot-relevant options of a request.
func ClientOf(req *dhcpv4.DHCPv4) Client {
	c := Client{VendorClass: req.ClassIdentifier(), ArchCode: -1}
	if v := req.Options.Get(dhcpv4.OptionClientSystemArchitectureType); len(v) >= 2 {
		c.ArchCode = int(v[0])<<8 | int(v[1])
	}
	c.IPXE = isIPXEUserClass(req.Options.Get(dhcpv4.OptionUserClassInformation))
	return c
}

// isIPXEUserClass reports whether option 77 says "iPXE", either as the raw
// string iPXE sends or in RFC 3004's length-prefixed form.
func isIPXEUserClass(v []byte) bool {
	if bytes.Equal(v, []byte("iPXE")) {
		return true
	}
	for len(v) > 0 {
		n := int(v[0])
		if n == 0 || 1+n > len(v) {
			return false
		}
		if string(v[1:1+n]) == "iPXE" {
			return true
		}
		v = v[1+n:]
	}
	return false
}

// PXE reports whether the client is network-boot firmware (option 60
// starts with "PXEClient" or "HTTPClient").
func (c Client) PXE() bool {
	return strings.HasPrefix(c.VendorClass, VendorPXE) || strings.HasPrefix(c.VendorClass, VendorHTTP)
}

// HTTP reports whether the client is UEFI HTTP boot: vendor class
// "HTTPClient", or option 93 says so (16, 19).
func (c Client) HTTP() bool {
	return strings.HasPrefix(c.VendorClass, VendorHTTP) || c.ArchCode == 16 || c.ArchCode == 19
}

// archOf maps an option 93 value to an Arch, or says why it cannot.
func archOf(code int) (Arch, error) {
	switch code {
	case 0:
		return ArchBIOS, nil
	case 7, 9:
		return ArchAMD64EFI, nil
	case 11:
		return ArchARM64EFI, nil
	case 16:
		return ArchAMD64EFIHTTP, nil
	case 19:
		return ArchARM64EFIHTTP, nil
	case -1:
		return "", fmt.Errorf("no client architecture (option 93)")
	}
	return "", fmt.Errorf("client architecture %d (option 93) is not one keso boots (0, 7, 9, 11, 16, 19)", code)
}

// Boot is the answer for one network-boot client.
type Boot struct {
	Arch        Arch
	File        string // TFTP file name, or an http:// URL when HTTP
	HTTP        bool   // File is a URL (iPXE script or UEFI HTTP boot), not a TFTP name
	VendorClass string // option 60 to send back: "PXEClient" or "HTTPClient"
	What        string // short description for events: "undionly.kpxe", "ipxe script", …
}

// BootFor decides what a network-boot client gets. It is pure: the same
// config and client always give the same answer. An error says why the
// client gets no answer.
//
//   - iPXE (user class "iPXE") already runs iPXE: it gets ScriptURL.
//   - UEFI HTTP boot gets HTTPBase + HTTPPathAMD64EFI (or HTTPPathARM64EFI
//     when HaveArm64EFI) and vendor class "HTTPClient".
//   - PXE gets the TFTP file: FileBIOS, FileAMD64EFI, or FileARM64EFI when
//     HaveArm64EFI.
func (c *Config) BootFor(cl Client) (Boot, error) {
	arch, err := archOf(cl.ArchCode)
	if err != nil {
		return Boot{}, err
	}
	b := Boot{Arch: arch, VendorClass: VendorPXE}
	if cl.HTTP() {
		b.VendorClass = VendorHTTP
	}
	arm64 := arch == ArchARM64EFI || arch == ArchARM64EFIHTTP
	switch {
	case cl.IPXE:
		b.File, b.HTTP, b.What = c.ScriptURL, true, "ipxe script"
	case cl.HTTP():
		if c.HTTPBase == "" {
			return Boot{Arch: arch}, fmt.Errorf("UEFI HTTP boot client (%s) but no HTTPBase is configured", arch)
		}
		path := HTTPPathAMD64EFI
		if arm64 {
			if !c.HaveArm64EFI {
				return Boot{Arch: arch}, fmt.Errorf("arm64 UEFI HTTP boot client but there is no arm64 ipxe.efi to serve")
			}
			path = HTTPPathARM64EFI
		} else if arch == ArchBIOS {
			return Boot{Arch: arch}, fmt.Errorf("HTTPClient vendor class with BIOS architecture (0): cannot HTTP-boot a BIOS")
		}
		b.File, b.HTTP = strings.TrimSuffix(c.HTTPBase, "/")+path, true
		b.What = "http " + b.File
	case arch == ArchBIOS:
		b.File, b.What = FileBIOS, FileBIOS
	case arch == ArchAMD64EFI || arch == ArchAMD64EFIHTTP:
		b.File, b.What = FileAMD64EFI, FileAMD64EFI
	case arm64:
		if !c.HaveArm64EFI {
			return Boot{Arch: arch}, fmt.Errorf("arm64 UEFI PXE client but there is no arm64 ipxe.efi to serve (%s)", FileARM64EFI)
		}
		b.File, b.What = FileARM64EFI, FileARM64EFI
	}
	return b, nil
}
