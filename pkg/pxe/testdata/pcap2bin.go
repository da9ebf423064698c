//go:build ignore

// pcap2bin extracts the DHCP payloads (UDP to port 67 or 4011) sent by
// clients (BOOTREQUESTs) from a classic pcap file of Ethernet frames, as QEMU's filter-dump
// writes them, and writes each one as PREFIX-N-TYPE.bin.
//
//	go run testdata/pcap2bin.go capture.pcap PREFIX
package main

import (
	"encoding/binary"
	"fmt"
	"log"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: pcap2bin capture.pcap PREFIX")
	}
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	if len(b) < 24 {
		log.Fatal("short pcap")
	}
	var bo binary.ByteOrder = binary.LittleEndian
	switch bo.Uint32(b) {
	case 0xa1b2c3d4:
	case 0xd4c3b2a1:
		bo = binary.BigEndian
	default:
		log.Fatalf("not a pcap file (magic %#x)", bo.Uint32(b))
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		log.Fatalf("link type %d, want 1 (Ethernet)", lt)
	}
	n := 0
	for off := 24; off+16 <= len(b); {
		incl := int(bo.Uint32(b[off+8:]))
		if off+16+incl > len(b) {
			log.Fatal("truncated record")
		}
		f := b[off+16 : off+16+incl]
		off += 16 + incl
		f = skipVnetHeader(f)
		if len(f) < 14+20 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
			continue
		}
		ip := f[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 17 || len(ip) < ihl+8 {
			continue
		}
		udp := ip[ihl:]
		dport := binary.BigEndian.Uint16(udp[2:])
		if dport != 67 && dport != 4011 {
			continue
		}
		ulen := int(binary.BigEndian.Uint16(udp[4:]))
		if ulen < 8 || ulen > len(udp) {
			log.Fatal("bad UDP length")
		}
		p := udp[8:ulen]
		if len(p) == 0 || p[0] != 1 { // BOOTREQUEST only: skip server replies
			continue
		}
		typ := "unknown"
		// Find option 53 after the 240-byte fixed part and cookie.
		for i := 240; i+1 < len(p); {
			code := p[i]
			if code == 0 {
				i++
				continue
			}
			if code == 255 {
				break
			}
			l := int(p[i+1])
			if code == 53 && l == 1 && i+2 < len(p) {
				typ = map[byte]string{1: "discover", 3: "request", 8: "inform"}[p[i+2]]
				if typ == "" {
					typ = fmt.Sprint("type", p[i+2])
				}
			}
			i += 2 + l
		}
		n++
		name := fmt.Sprintf("%s-%d-%s-%d.bin", os.Args[2], n, typ, dport)
		if err := os.WriteFile(name, p, 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Println(name)
	}
}

// skipVnetHeader drops the virtio-net header (10 or 12 bytes) that QEMU's
// filter-dump keeps in front of each frame on a tap netdev with vnet_hdr.
func skipVnetHeader(f []byte) []byte {
	known := func(off int) bool {
		if len(f) < off+14 {
			return false
		}
		t := binary.BigEndian.Uint16(f[off+12:])
		return t == 0x0800 || t == 0x86dd || t == 0x0806
	}
	if known(0) {
		return f
	}
	for _, off := range []int{12, 10} {
		if known(off) {
			return f[off:]
		}
	}
	return f
}
