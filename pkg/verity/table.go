package verity

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// Target is one line of a device-mapper table: sectors [Start,
// Start+Length) of the mapped device go to target Type with Params.
type Target struct {
	Start, Length uint64 // 512-byte sectors
	Type          string
	Params        string
}

// String renders t as dmsetup(8) writes a table line.
func (t Target) String() string {
	return fmt.Sprintf("%d %d %s %s", t.Start, t.Length, t.Type, t.Params)
}

// The verity target's optional arguments that take no value. keso passes
// none of them; the others are here so a table read back from a kernel or
// written by veritysetup can be rendered and checked.
const (
	OptIgnoreCorruption    = "ignore_corruption"
	OptRestartOnCorruption = "restart_on_corruption"
	OptPanicOnCorruption   = "panic_on_corruption"
	OptIgnoreZeroBlocks    = "ignore_zero_blocks"
	OptCheckAtMostOnce     = "check_at_most_once"
)

var knownOpts = map[string]bool{
	OptIgnoreCorruption: true, OptRestartOnCorruption: true, OptPanicOnCorruption: true,
	OptIgnoreZeroBlocks: true, OptCheckAtMostOnce: true,
}

// Target returns the verity target for t over dataDev and hashDev (paths
// or major:minor), with the optional arguments opts.
//
// keso passes no optional arguments, so a block that does not match its
// hash fails the read with EIO and the kernel logs it. Not
// restart_on_corruption or panic_on_corruption: one bad block on a cheap
// SD card in a rarely read file would reboot an unattended node, again at
// every boot that reads it, and a reboot loop at a store with no one on
// site is the worst outcome; with EIO the node stays up, the console and
// SSH stay usable and the error is reported (the boot agent and the upgrade
// controller decide what to do). Not ignore_corruption: it only logs.
// Not check_at_most_once: a block would be checked on its first read only,
// so whoever can change the disk under a running node could change it
// after that. Not ignore_zero_blocks: keso's images are squashfs with no
// holes to skip, and it would let an all-zero block through unchecked.
func (t *Tree) Target(dataDev, hashDev string, opts ...string) (Target, error) {
	for _, o := range opts {
		if !knownOpts[o] {
			return Target{}, fmt.Errorf("%w: verity option %q", ErrParams, o)
		}
	}
	for _, dev := range []string{dataDev, hashDev} {
		if dev == "" || strings.ContainsAny(dev, " \t\n\x00") {
			return Target{}, fmt.Errorf("%w: device %q", ErrParams, dev)
		}
	}
	salt := "-"
	if len(t.Salt) > 0 {
		salt = hex.EncodeToString(t.Salt)
	}
	params := fmt.Sprintf("1 %s %s %d %d %d %d %s %s %s",
		dataDev, hashDev, t.DataBlockSize, t.HashBlockSize, t.DataBlocks, t.HashStartBlock,
		t.Algorithm, hex.EncodeToString(t.RootHash), salt)
	if len(opts) > 0 {
		params += fmt.Sprintf(" %d %s", len(opts), strings.Join(opts, " "))
	}
	return Target{
		Length: t.DataBlocks * uint64(t.DataBlockSize) / 512,
		Type:   "verity",
		Params: params,
	}, nil
}

// Table renders the kernel table line for t:
//
//	0 <sectors> verity 1 <dev> <hashdev> 4096 4096 <blocks> <hash_start_block> sha256 <root> <salt> [<#opts> <opts>…]
//
// See Target for the optional arguments and why keso uses none.
func (t *Tree) Table(dataDev, hashDev string, opts ...string) (string, error) {
	tg, err := t.Target(dataDev, hashDev, opts...)
	if err != nil {
		return "", err
	}
	return tg.String(), nil
}
