package main

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/keso-os/keso/pkg/delta"
	"github.com/keso-os/keso/pkg/sign"
	"github.com/keso-os/keso/pkg/upgrade"
)

// deltaCmd writes the delta a node running --from fetches to upgrade to
// --to (docs/upgrade.md "Deltas"), or with dryRun (keso-build delta-size)
// only prints what it would cost.
func deltaCmd(args []string, dryRun bool) int {
	name := "keso-build delta"
	if dryRun {
		name = "keso-build delta-size"
	}
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	from := fl.String("from", "", "the upgrade image nodes run now (keso-<version>-<arch>.squashfs); none: the delta from nothing")
	to := fl.String("to", "", "the upgrade image they move to; the delta goes beside it, in TO.delta/")
	keyFile := fl.String("sign-key", os.Getenv("KESO_SIGN_KEY"), "private key file that signs the delta's index (the release key)")
	nodes := fl.Int("nodes", 1, "how many nodes the rollout reaches (the cost is multiplied)")
	rate := fl.Float64("link-kbit", 56, "the slowest store's link in kbit/s, for the time the fetch takes")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *to == "" {
		fmt.Fprintf(os.Stderr, "%s: want --to NEW.squashfs and --from OLD.squashfs (without --from: the delta from nothing, for nodes no delta fits)\n", name)
		return 2
	}
	fail := func(err error) int { fmt.Fprintf(os.Stderr, "%s: %v\n", name, err); return 1 }
	// The key is read and parsed before the minute Make may take.
	var priv ed25519.PrivateKey
	if !dryRun {
		if *keyFile == "" {
			return fail(fmt.Errorf("no --sign-key: nodes refuse an unsigned delta (keso-build keygen makes a key)"))
		}
		key, err := os.ReadFile(*keyFile)
		if err == nil {
			priv, err = sign.ParsePrivate(key)
		}
		if err != nil {
			return fail(fmt.Errorf("signing key %s: %w", *keyFile, err))
		}
	}
	var old []byte
	var oldVer string
	if *from != "" {
		var err error
		if old, oldVer, err = readRelease(*from); err != nil {
			return fail(err)
		}
	}
	img, newVer, err := readRelease(*to)
	if err != nil {
		return fail(err)
	}
	var data io.Writer = io.Discard
	paths := delta.PathsFor(*to, oldVer)
	var tmp *os.File
	if !dryRun {
		if err := os.MkdirAll(filepath.Dir(paths.Data), 0o755); err != nil {
			return fail(err)
		}
		if tmp, err = os.CreateTemp(filepath.Dir(paths.Data), ".data-*"); err != nil {
			return fail(err)
		}
		defer os.Remove(tmp.Name())
		data = tmp
	}
	t0 := time.Now()
	ix, err := delta.Make(old, img, data, delta.Options{})
	if err != nil {
		return fail(fmt.Errorf("make delta %s -> %s: %w", *from, *to, err))
	}
	ix.FromVersion, ix.Version = oldVer, newVer
	var index, sig []byte
	if dryRun {
		index, err = ix.Marshal()
	} else {
		index, sig, err = ix.Sign(priv)
	}
	if err != nil {
		return fail(err)
	}
	if !dryRun {
		if err := tmp.Close(); err != nil {
			return fail(err)
		}
		// The data file and the signature first, the index last: a
		// published index always has both beside it.
		if err := os.Rename(tmp.Name(), paths.Data); err != nil {
			return fail(err)
		}
		if err := os.WriteFile(paths.Sig, sig, 0o644); err != nil {
			return fail(err)
		}
		if err := os.WriteFile(paths.Index, index, 0o644); err != nil {
			return fail(err)
		}
		fmt.Printf("%s: wrote %s, %s and %s in %s\n", name, paths.Index, paths.Sig, paths.Data, time.Since(t0).Round(time.Millisecond))
	}
	fmt.Print(costReport(oldVer, newVer, int64(len(index)), ix, *nodes, *rate))
	return 0
}

// readRelease reads an upgrade image and its version.
func readRelease(path string) ([]byte, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	info, err := upgrade.ReadImage(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return b, info.Version, nil
}

// costReport says what a node on from fetches for to, against the full
// image, and how long that takes on the slowest link.
func costReport(from, to string, indexBytes int64, ix delta.Index, nodes int, kbit float64) string {
	fetched, full := ix.Fetched(indexBytes), ix.To.Size
	at := func(n int64) time.Duration {
		return time.Duration(float64(n*8) / (kbit * 1000) * float64(time.Second)).Round(time.Second)
	}
	var copied int64
	for _, op := range ix.Ops {
		if op.From != nil {
			copied += op.Len
		}
	}
	if from == "" {
		from = "any version"
	}
	s := fmt.Sprintf("a node on %s fetches %d bytes for %s (index %d + data %d): %.2f%% of the %d-byte image; %s at %g kbit/s instead of %s\n",
		from, fetched, to, indexBytes, ix.Data.Size, 100*float64(fetched)/float64(max(full, 1)), full, at(fetched), kbit, at(full))
	s += fmt.Sprintf("  %d bytes are copied from what the node has, %d rebuilt from the data file\n", copied, full-copied)
	if nodes > 1 {
		s += fmt.Sprintf("  %d nodes: %d bytes (%.1f MiB), against %.1f MiB of full images\n", nodes, fetched*int64(nodes),
			float64(fetched*int64(nodes))/(1<<20), float64(full*int64(nodes))/(1<<20))
	}
	return s
}
