// Package sign signs and verifies keso images with ed25519.
//
// A signature covers the image's SHA-256 digest together with a domain
// string, so a key used for keso images cannot be tricked into signing
// anything else: sig = ed25519.Sign(priv, "keso-image-v1\x00" || sha256).
// The detached signature file (<image>.sig) holds the base64 signature on
// one line, prefixed by the key id (first 8 bytes of the public key's
// SHA-256, hex) so a node with several trusted keys knows which one to try.
//
// A slot's dm-verity root hash (pkg/verity) is signed the same way under
// its own domain, "keso-verity-root-v1\x00" || root hash, in
// <image>.verity.sig beside <image>.verity.
//
// Key files: the private key file holds "KESO-ED25519-PRIVATE <base64 seed>";
// the public key is written the way cloud-config's upgrade.public_keys
// takes it: "ed25519:<base64 of 32 bytes>".
package sign

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

const (
	domain        = "keso-image-v1\x00"
	verityDomain  = "keso-verity-root-v1\x00"
	deltaDomain   = "keso-delta-index-v1\x00"
	privatePrefix = "KESO-ED25519-PRIVATE "
	publicPrefix  = "ed25519:"
)

// ErrBadSignature is returned when no trusted key verifies the signature.
var ErrBadSignature = errors.New("signature does not verify with any trusted key")

// GenerateKey makes a new key pair from r (crypto/rand when nil).
func GenerateKey(r io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return pub, priv, nil
}

// MarshalPrivate renders a private key file.
func MarshalPrivate(priv ed25519.PrivateKey) []byte {
	return []byte(privatePrefix + base64.StdEncoding.EncodeToString(priv.Seed()) + "\n")
}

// ParsePrivate reads a private key file.
func ParsePrivate(data []byte) (ed25519.PrivateKey, error) {
	s := strings.TrimSpace(string(data))
	b64, ok := strings.CutPrefix(s, privatePrefix)
	if !ok {
		return nil, fmt.Errorf("not a keso private key: want a line starting %q (make one with keso-build keygen)", strings.TrimSpace(privatePrefix))
	}
	seed, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("private key: want base64 of a %d-byte ed25519 seed", ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// MarshalPublic renders a public key as "ed25519:<base64>".
func MarshalPublic(pub ed25519.PublicKey) string {
	return publicPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublic reads "ed25519:<base64>" (the prefix is optional).
func ParsePublic(s string) (ed25519.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), publicPrefix))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q: want ed25519:<base64 of 32 bytes>", s)
	}
	return ed25519.PublicKey(raw), nil
}

// KeyID names a public key in signature files.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Sign returns the signature file content for an image with the given
// SHA-256 digest.
func Sign(priv ed25519.PrivateKey, digest [sha256.Size]byte) []byte {
	return signMessage(priv, message(digest))
}

// SignVerityRoot returns the signature file content for an image's
// dm-verity root hash.
func SignVerityRoot(priv ed25519.PrivateKey, root [sha256.Size]byte) []byte {
	return signMessage(priv, append([]byte(verityDomain), root[:]...))
}

// VerifyVerityRoot checks a root hash's signature file (see Verify).
func VerifyVerityRoot(sigFile []byte, root [sha256.Size]byte, trusted []ed25519.PublicKey) (ed25519.PublicKey, error) {
	return verifyMessage(sigFile, append([]byte(verityDomain), root[:]...), trusted)
}

// SignDeltaIndex returns the signature file content for a delta index
// (pkg/delta) with the given SHA-256 digest of its bytes.
func SignDeltaIndex(priv ed25519.PrivateKey, digest [sha256.Size]byte) []byte {
	return signMessage(priv, append([]byte(deltaDomain), digest[:]...))
}

// VerifyDeltaIndex checks a delta index's signature file (see Verify).
func VerifyDeltaIndex(sigFile []byte, digest [sha256.Size]byte, trusted []ed25519.PublicKey) (ed25519.PublicKey, error) {
	return verifyMessage(sigFile, append([]byte(deltaDomain), digest[:]...), trusted)
}

func signMessage(priv ed25519.PrivateKey, msg []byte) []byte {
	sig := ed25519.Sign(priv, msg)
	pub := priv.Public().(ed25519.PublicKey)
	return []byte(KeyID(pub) + " " + base64.StdEncoding.EncodeToString(sig) + "\n")
}

// Verify checks a signature file against the digest with any of the
// trusted keys, and returns the key that verified it.
func Verify(sigFile []byte, digest [sha256.Size]byte, trusted []ed25519.PublicKey) (ed25519.PublicKey, error) {
	return verifyMessage(sigFile, message(digest), trusted)
}

func verifyMessage(sigFile []byte, msg []byte, trusted []ed25519.PublicKey) (ed25519.PublicKey, error) {
	fields := strings.Fields(string(sigFile))
	if len(fields) != 2 {
		return nil, fmt.Errorf("signature file: want \"<key id> <base64 signature>\", got %d fields", len(fields))
	}
	sig, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("signature file: signature is not base64 of %d bytes", ed25519.SignatureSize)
	}
	if len(trusted) == 0 {
		return nil, fmt.Errorf("%w: no trusted keys are configured", ErrBadSignature)
	}
	for _, k := range trusted {
		if ed25519.Verify(k, msg, sig) {
			return k, nil
		}
	}
	for _, k := range trusted {
		if KeyID(k) == fields[0] {
			// The right key, a wrong signature: the image or the
			// signature was changed after signing.
			return nil, fmt.Errorf("%w: the signature names trusted key %s but does not match this image (the image or its signature was altered)", ErrBadSignature, fields[0])
		}
	}
	return nil, fmt.Errorf("%w (signed by key %s; trusted: %s)", ErrBadSignature, fields[0], keyIDs(trusted))
}

func keyIDs(keys []ed25519.PublicKey) string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = KeyID(k)
	}
	return strings.Join(ids, ", ")
}

func message(digest [sha256.Size]byte) []byte {
	return append([]byte(domain), digest[:]...)
}
