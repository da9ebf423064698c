package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/keso-os/keso/pkg/sign"
)

// keygen writes a new release key pair: FILE (private, 0600) and FILE.pub.
func keygen(args []string) int {
	fl := flag.NewFlagSet("keso-build keygen", flag.ContinueOnError)
	out := fl.String("out", "keso-release.key", "private key file to write (the public key goes to FILE.pub)")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if _, err := os.Stat(*out); err == nil {
		fmt.Fprintf(os.Stderr, "keso-build keygen: %s exists; refusing to overwrite a signing key\n", *out)
		return 1
	}
	pub, priv, err := sign.GenerateKey(nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso-build keygen: %v\n", err)
		return 1
	}
	if err := os.WriteFile(*out, sign.MarshalPrivate(priv), 0o600); err != nil {
		fmt.Fprintf(os.Stderr, "keso-build keygen: %v\n", err)
		return 1
	}
	if err := os.WriteFile(*out+".pub", []byte(sign.MarshalPublic(pub)+"\n"), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "keso-build keygen: %v\n", err)
		return 1
	}
	fmt.Printf("keso-build keygen: wrote %s (keep it secret) and %s.pub: %s (key id %s)\n", *out, *out, sign.MarshalPublic(pub), sign.KeyID(pub))
	return 0
}
