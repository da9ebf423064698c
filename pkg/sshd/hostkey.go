package sshd

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"golang.org/x/crypto/ssh"

	"github.com/keso-os/keso/pkg/host"
)

// DefaultKeyDir is where the host keys live on a node: under /var, which is
// the state partition on installed systems (and tmpfs on live boots, where
// the keys are new at every boot).
const DefaultKeyDir = "/var/lib/keso/ssh"

// RSAHostKeyBits is the size of the RSA host key (what ssh-keygen makes
// by default, and what ssh-audit asks for).
const RSAHostKeyBits = 3072

// rsaSigAlgs are the signatures the RSA host key makes: SHA-2 only, never
// the SHA-1 "ssh-rsa" that OpenSSH 8.8 turned off and ssh-audit fails.
var rsaSigAlgs = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}

// hostKeyTypes are the host keys a node has, in the order they are offered.
// ed25519 is what every OpenSSH since 6.5 picks; RSA 3072 (signing with
// rsa-sha2-512/256) is for clients without ed25519 (older PuTTY, Java and
// network-gear clients). An ECDSA P-256 key made by an earlier keso
// (ssh_host_ecdsa_key) is left on disk but no longer offered: ssh-audit
// fails the NIST curves.
var hostKeyTypes = []struct {
	file string
	gen  func() (crypto.Signer, error)
}{
	{"ssh_host_ed25519_key", func() (crypto.Signer, error) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}},
	{"ssh_host_rsa_key", func() (crypto.Signer, error) {
		return rsa.GenerateKey(rand.Reader, RSAHostKeyBits)
	}},
}

// restrict limits an RSA signer to the SHA-2 signature algorithms.
func restrict(s ssh.Signer) (ssh.Signer, error) {
	if s.PublicKey().Type() != ssh.KeyAlgoRSA {
		return s, nil
	}
	as, ok := s.(ssh.AlgorithmSigner)
	if !ok {
		return nil, fmt.Errorf("RSA host key signer cannot choose its signature algorithm")
	}
	return ssh.NewSignerWithAlgorithms(as, rsaSigAlgs)
}

// HostKeys loads the host keys from dir under fsys, generating (and saving,
// mode 0600, OpenSSH format, with a .pub beside) the ones that are missing.
// A key file that cannot be parsed is kept as NAME.bad and replaced, so that
// a corrupted file never locks the node out. Each generated or replaced key
// is reported through note.
func HostKeys(fsys host.FS, dir string, note func(action, file, detail string)) ([]ssh.Signer, error) {
	if note == nil {
		note = func(string, string, string) {}
	}
	if err := fsys.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("host keys: %w", err)
	}
	var signers []ssh.Signer
	for _, kt := range hostKeyTypes {
		p := path.Join(dir, kt.file)
		b, err := fsys.ReadFile(p)
		switch {
		case err == nil:
			s, perr := ssh.ParsePrivateKey(b)
			if perr == nil {
				if s, perr = restrict(s); perr == nil {
					signers = append(signers, s)
					continue
				}
			}
			if rerr := fsys.Rename(p, p+".bad"); rerr != nil {
				return nil, fmt.Errorf("host key %s is unreadable (%v) and cannot be moved aside: %w", p, perr, rerr)
			}
			note("replace", p, fmt.Sprintf("unreadable key kept as %s.bad: %v", p, perr))
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("host key: %w", err)
		}
		s, err := generate(fsys, p, kt.gen)
		if err != nil {
			return nil, err
		}
		note("generate", p, ssh.FingerprintSHA256(s.PublicKey()))
		signers = append(signers, s)
	}
	return signers, nil
}

func generate(fsys host.FS, p string, gen func() (crypto.Signer, error)) (ssh.Signer, error) {
	k, err := gen()
	if err != nil {
		return nil, fmt.Errorf("generate host key %s: %w", p, err)
	}
	blk, err := ssh.MarshalPrivateKey(k, "keso host key")
	if err != nil {
		return nil, fmt.Errorf("encode host key %s: %w", p, err)
	}
	s, err := ssh.NewSignerFromSigner(k)
	if err == nil {
		s, err = restrict(s)
	}
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", p, err)
	}
	if err := fsys.WriteFileAtomic(p, pem.EncodeToMemory(blk), 0o600); err != nil {
		return nil, fmt.Errorf("save host key: %w", err)
	}
	if err := fsys.WriteFileAtomic(p+".pub", ssh.MarshalAuthorizedKey(s.PublicKey()), 0o644); err != nil {
		return nil, fmt.Errorf("save host key: %w", err)
	}
	return s, nil
}
