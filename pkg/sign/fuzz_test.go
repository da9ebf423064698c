package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
)

// fuzzKey is a fixed key pair, so the seeds are the same on every run.
func fuzzKey(f *testing.F) (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		f.Fatal(err)
	}
	return pub, priv
}

// FuzzParsePublic: a public key that parses is 32 bytes and renders to a
// string that parses back to the same key.
func FuzzParsePublic(f *testing.F) {
	pub, _ := fuzzKey(f)
	for _, s := range []string{
		MarshalPublic(pub), MarshalPublic(pub) + "\n", " " + MarshalPublic(pub)[len(publicPrefix):],
		"ed25519:AAAA", "ed25519:", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG", "ed25519:" + string(bytes.Repeat([]byte{'A'}, 43)) + "=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParsePublic(s)
		if err != nil {
			return
		}
		if len(k) != ed25519.PublicKeySize {
			t.Fatalf("ParsePublic(%q) = %d bytes, want %d", s, len(k), ed25519.PublicKeySize)
		}
		again, err := ParsePublic(MarshalPublic(k))
		if err != nil || !again.Equal(k) {
			t.Fatalf("ParsePublic(MarshalPublic(%x)) = %x, %v", k, again, err)
		}
	})
}

// FuzzParsePrivate: a private key file that parses holds a usable key
// whose file renders and parses back to the same key.
func FuzzParsePrivate(f *testing.F) {
	_, priv := fuzzKey(f)
	for _, b := range [][]byte{
		MarshalPrivate(priv), bytes.TrimSpace(MarshalPrivate(priv)), []byte("KESO-ED25519-PRIVATE \n"),
		[]byte("KESO-ED25519-PRIVATE AAAA"), []byte("ssh-ed25519 AAAA"), {},
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePrivate(data)
		if err != nil {
			return
		}
		if len(k) != ed25519.PrivateKeySize {
			t.Fatalf("ParsePrivate = %d bytes, want %d", len(k), ed25519.PrivateKeySize)
		}
		again, err := ParsePrivate(MarshalPrivate(k))
		if err != nil || !again.Equal(k) {
			t.Fatalf("ParsePrivate(MarshalPrivate(k)) = %v; differs from k", err)
		}
	})
}

// FuzzVerify: a signature file is accepted only when it verifies with a
// trusted key (the one returned); anything else is refused with an error.
func FuzzVerify(f *testing.F) {
	pub, priv := fuzzKey(f)
	digest := sha256.Sum256([]byte("image bytes"))
	good := Sign(priv, digest)
	for _, b := range [][]byte{
		good, bytes.TrimSpace(good), []byte(KeyID(pub) + " AAAA\n"), []byte("garbage"), {},
		append([]byte(nil), good[len(KeyID(pub))+1:]...), []byte("a b c"),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, sig []byte) {
		k, err := Verify(sig, digest, []ed25519.PublicKey{pub})
		if err != nil {
			if k != nil {
				t.Fatalf("Verify returned key %x with error %v", k, err)
			}
			return
		}
		if !k.Equal(pub) {
			t.Fatalf("Verify accepted with key %x, want the trusted %x", k, pub)
		}
	})
}
