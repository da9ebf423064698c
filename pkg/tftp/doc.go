// Package tftp is a small read-only TFTP server (RFC 1350) with option
// negotiation (RFC 2347): blksize (RFC 2348), timeout and tsize (RFC
// 2349). `keso netboot serve` uses it to hand iPXE binaries to PXE
// clients.
//
// The server never touches the file system: Server.Open decides what
// exists, given a name already cleaned by CleanName (relative to the
// served root, no "..", satisfying fs.ValidPath). Write requests are
// refused with an access violation ("read-only server").
//
// Limits and choices a caller should know:
//   - netascii is accepted but served as octet: the bytes go out as they
//     are, without CR/LF translation (iPXE, pxelinux and tftp-hpa ask for
//     octet anyway).
//   - blksize is clamped to MaxBlksize (1468), so DATA packets fit a
//     1500-byte Ethernet MTU; a blksize outside 8..65464 or a timeout
//     outside 1..255 is left out of the OACK.
//   - Block numbers roll over from 65535 to 0, as tftp-hpa and iPXE
//     expect, so files may be larger than 65535 blocks.
//   - Each transfer runs on its own UDP socket (its own TID), bound to the
//     listening socket's address with an ephemeral port. On a host with
//     several addresses, listen on a specific one so that replies leave
//     from the address the client asked.
//
// Decide, then do: packets are parsed and built by pure functions
// (ParseRequest, negotiate, the packet builders), and the socket loop only
// sends what they decide.
package tftp
