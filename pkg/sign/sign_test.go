package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestSignVerify(t *testing.T) {
	pub, priv, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 64)))
	digest := sha256.Sum256([]byte("image bytes"))
	sig := Sign(priv, digest)

	if k, err := Verify(sig, digest, []ed25519.PublicKey{other, pub}); err != nil || !k.Equal(pub) {
		t.Errorf("Verify with the right key among others = %v, %v", k, err)
	}
	tampered := digest
	tampered[0] ^= 1
	if _, err := Verify(sig, tampered, []ed25519.PublicKey{pub}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify of a flipped digest = %v, want ErrBadSignature", err)
	}
	if _, err := Verify(sig, digest, []ed25519.PublicKey{other}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify with an untrusted key = %v, want ErrBadSignature", err)
	}
	flipped := append([]byte(nil), sig...)
	flipped[len(flipped)-5] ^= 0x01
	if _, err := Verify(flipped, digest, []ed25519.PublicKey{pub}); err == nil {
		t.Errorf("Verify of a flipped signature byte succeeded")
	}
	if _, err := Verify([]byte("garbage"), digest, []ed25519.PublicKey{pub}); err == nil {
		t.Errorf("Verify of garbage succeeded")
	}
}

func TestKeyFilesRoundTrip(t *testing.T) {
	pub, priv, _ := GenerateKey(nil)
	got, err := ParsePrivate(MarshalPrivate(priv))
	if err != nil || !got.Equal(priv) {
		t.Errorf("ParsePrivate(MarshalPrivate) = %v, %v", got, err)
	}
	gp, err := ParsePublic(MarshalPublic(pub))
	if err != nil || !gp.Equal(pub) {
		t.Errorf("ParsePublic(MarshalPublic) = %v, %v", gp, err)
	}
	if _, err := ParsePrivate([]byte("ssh-ed25519 AAAA")); err == nil {
		t.Errorf("ParsePrivate accepted an SSH key")
	}
	if _, err := ParsePublic("ed25519:AAAA"); err == nil {
		t.Errorf("ParsePublic accepted a short key")
	}
}

// TestVerityRootDomain: a root hash (or delta index) signature verifies as
// one, and never as an image signature over the same 32 bytes (nor the
// other way round).
func TestVerityRootDomain(t *testing.T) {
	pub, priv, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	root := sha256.Sum256([]byte("a hash block"))
	trusted := []ed25519.PublicKey{pub}
	rootSig := SignVerityRoot(priv, root)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"root signature as a root signature", second(VerifyVerityRoot(rootSig, root, trusted)), true},
		{"root signature as an image signature", second(Verify(rootSig, root, trusted)), false},
		{"image signature as a root signature", second(VerifyVerityRoot(Sign(priv, root), root, trusted)), false},
		{"root signature over another root", second(VerifyVerityRoot(rootSig, sha256.Sum256([]byte("other")), trusted)), false},
		{"delta index signature as a delta index signature", second(VerifyDeltaIndex(SignDeltaIndex(priv, root), root, trusted)), true},
		{"delta index signature as an image signature", second(Verify(SignDeltaIndex(priv, root), root, trusted)), false},
		{"image signature as a delta index signature", second(VerifyDeltaIndex(Sign(priv, root), root, trusted)), false},
		{"root signature as a delta index signature", second(VerifyDeltaIndex(rootSig, root, trusted)), false},
	} {
		if got := tc.err == nil; got != tc.want {
			t.Errorf("%s: verifies = %v (%v), want %v", tc.name, got, tc.err, tc.want)
		}
	}
}

func second(_ ed25519.PublicKey, err error) error { return err }
