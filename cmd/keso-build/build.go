package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/term"

	"github.com/keso-os/keso/pkg/fetch"
	"github.com/keso-os/keso/pkg/image/build"
	"github.com/keso-os/keso/pkg/image/profile"
	"github.com/keso-os/keso/pkg/sign"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// buildImages builds every artifact of each profile named in args.
func buildImages(args []string) int {
	fl := flag.NewFlagSet("keso-build", flag.ContinueOnError)
	var (
		repo    = fl.String("repo", ".", "keso checkout (Go sources, overlay/, iso/, images/)")
		out     = fl.String("out", "dist", "output folder; artifacts go to <out>/<profile name>/ (the arch for the standard profiles)")
		cache   = fl.String("cache", fetch.DefaultDir(), "content-addressed input cache")
		k3s     = fl.String("k3s", os.Getenv("K3S"), "k3s binary to ship instead of downloading the pinned release (an executable ELF for the image's arch)")
		fixture = fl.Bool("test-fixture", false, "TEST SUITE ONLY: allow a k3s stand-in carrying the test-fixture marker; the image records it as a test fixture")
		version = fl.String("version", "", "image version (default: the profile's)")
		nbURL   = fl.String("netboot-url", "", "base URL written into netboot/boot.ipxe (default http://${next-server})")
		outputs = fl.String("outputs", "", "comma-separated outputs to write (default: the profile's): squashfs,vmlinuz,initrd,iso,raw,netboot")
		rootMiB = fl.Int("root-size", 0, "raw disk root slot size in MiB (default: the profile's)")
		initBin = fl.String("init-binary", "", "use this keso-init binary instead of building cmd/keso-init")
		quiet   = fl.Bool("quiet", false, "print nothing but errors")
		asJSON  = fl.Bool("json", false, "print the manifest (paths, sizes, sha256) as JSON on stdout")
		signKey = fl.String("sign-key", os.Getenv("KESO_SIGN_KEY"), "private key file that signs the upgrade image (keso-build keygen makes one); its public key is built into the image")
		debs    listFlag
		extras  listFlag
	)
	fl.Var(&extras, "extra", "folder laid out like the root whose files are added to the image (repeatable; after the profile's extra:); it may add files, never replace keso's: see docs/build.md")
	fl.Var(&debs, "debs", "folder with .deb inputs (repeatable; default $KESO_DEBS or /var/cache/keso/debs)")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "usage: keso-build [flags] PROFILE.yaml|ARCH...\n\nBuilds every artifact of each image profile (images/<arch>.yaml).\n\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() == 0 {
		fl.Usage()
		return 2
	}
	if len(debs) == 0 {
		d := os.Getenv("KESO_DEBS")
		if d == "" {
			d = "/var/cache/keso/debs"
		}
		debs = listFlag{d}
	}
	epoch := int64(0)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		e, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "keso-build: SOURCE_DATE_EPOCH=%q is not a number of seconds\n", s)
			return 2
		}
		epoch = e
	} else if e, err := gitEpoch(*repo); err == nil {
		epoch = e
	}
	var key ed25519.PrivateKey
	if *signKey != "" {
		data, err := os.ReadFile(*signKey)
		if err != nil {
			fmt.Fprintf(os.Stderr, "keso-build: signing key: %v\n", err)
			return 1
		}
		if key, err = sign.ParsePrivate(data); err != nil {
			fmt.Fprintf(os.Stderr, "keso-build: signing key %s: %v\n", *signKey, err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var mans []*build.Manifest
	for _, a := range fl.Args() {
		path := a
		if !strings.HasSuffix(a, ".yaml") {
			path = filepath.Join(*repo, "images", a+".yaml")
		}
		p, err := profile.Load(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "keso-build: %v\n", err)
			return 1
		}
		dir := p.Name // amd64, arm64, armv7, amd64-metal, …
		if dir == "" {
			dir = p.Arch
		}
		o := build.Options{Profile: p, RepoDir: *repo, OutDir: filepath.Join(*out, dir), CacheDir: *cache,
			DebDirs: debs, K3s: *k3s, Version: *version, Epoch: epoch, NetbootURL: *nbURL,
			InitBinary: *initBin, RootSizeMiB: *rootMiB, SignKey: key, Extra: extras, TestFixture: *fixture}
		if *outputs != "" {
			o.Outputs = strings.Split(*outputs, ",")
		}
		if !*quiet {
			o.Log = os.Stderr
			o.Progress = term.IsTerminal(int(os.Stderr.Fd()))
			fmt.Fprintf(os.Stderr, "keso-build: %s (%s, version %s) -> %s\n", path, p.Arch, firstNonEmpty(*version, p.Version), o.OutDir)
		}
		m, err := build.Build(ctx, o)
		if err != nil {
			fmt.Fprintf(os.Stderr, "keso-build: %s: %v\n", p.Arch, err)
			return 1
		}
		if !*quiet {
			fmt.Fprintf(os.Stderr, "keso-build: %s done in %.1fs\n", p.Arch, m.Seconds)
		}
		mans = append(mans, m)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(mans); err != nil {
			fmt.Fprintf(os.Stderr, "keso-build: %v\n", err)
			return 1
		}
	}
	return 0
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
