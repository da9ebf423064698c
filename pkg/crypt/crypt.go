// Package crypt hashes and verifies passwords in the SHA-512 crypt format
// ("$6$"), as /etc/shadow stores them. It follows the published
// specification "Unix crypt using SHA-256 and SHA-512" by Ulrich Drepper:
// a salt of at most 16 characters, an optional "rounds=N$" (default 5000,
// clamped to 1000…999999999), and the 64-byte digest written in crypt's
// own base-64 alphabet with the specification's byte order.
package crypt

import (
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

const (
	prefix        = "$6$"
	roundsPrefix  = "rounds="
	DefaultRounds = 5000
	MinRounds     = 1000
	MaxRounds     = 999999999
	maxSalt       = 16
	alphabet      = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// ErrMismatch is returned by Verify when the password does not match.
var ErrMismatch = errors.New("password does not match")

// IsHash reports whether s looks like a crypt(3) hash ("$id$…") rather than
// a plain-text password.
func IsHash(s string) bool {
	if !strings.HasPrefix(s, "$") {
		return false
	}
	parts := strings.Split(s, "$")
	// "", id, [params,] salt, hash
	return len(parts) >= 4 && parts[1] != "" && parts[len(parts)-1] != ""
}

// Hash returns the SHA-512 crypt hash of password with a fresh random
// 16-character salt and the default rounds.
func Hash(password string) (string, error) {
	var raw [maxSalt]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("crypt: random salt: %w", err)
	}
	salt := make([]byte, maxSalt)
	for i, b := range raw {
		salt[i] = alphabet[int(b)%len(alphabet)]
	}
	return Crypt(password, prefix+string(salt))
}

// Crypt computes the hash of password with the settings in setting, which
// is "$6$salt", "$6$rounds=N$salt" or a whole "$6$…$hash" (its hash part is
// ignored), exactly like crypt(3) with a SHA-512 setting.
func Crypt(password, setting string) (string, error) {
	rounds, explicit, salt, err := parseSetting(setting)
	if err != nil {
		return "", err
	}
	sum := digest([]byte(password), []byte(salt), rounds)
	var b strings.Builder
	b.WriteString(prefix)
	if explicit {
		fmt.Fprintf(&b, "%s%d$", roundsPrefix, rounds)
	}
	b.WriteString(salt)
	b.WriteByte('$')
	b.WriteString(encode(sum))
	return b.String(), nil
}

// Verify checks password against hash, a "$6$…" string. It returns nil on a
// match, ErrMismatch on a wrong password, and another error when hash is
// not a SHA-512 crypt hash.
func Verify(hash, password string) error {
	if !strings.HasPrefix(hash, prefix) {
		return fmt.Errorf("crypt: unsupported hash %q (only SHA-512 crypt, $6$, is supported)", shortID(hash))
	}
	i := strings.LastIndexByte(hash, '$')
	if i < len(prefix) || i == len(hash)-1 {
		return fmt.Errorf("crypt: malformed hash: no digest after the salt")
	}
	got, err := Crypt(password, hash[:i])
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(hash)) != 1 {
		return ErrMismatch
	}
	return nil
}

func shortID(h string) string {
	if strings.HasPrefix(h, "$") {
		if j := strings.IndexByte(h[1:], '$'); j >= 0 {
			return h[:j+2]
		}
	}
	if len(h) > 3 {
		return h[:3] + "…"
	}
	return h
}

// parseSetting splits "$6$[rounds=N$]salt[$hash]".
func parseSetting(s string) (rounds int, explicit bool, salt string, err error) {
	if !strings.HasPrefix(s, prefix) {
		return 0, false, "", fmt.Errorf("crypt: setting %q does not start with %s", shortID(s), prefix)
	}
	rest := s[len(prefix):]
	rounds = DefaultRounds
	if strings.HasPrefix(rest, roundsPrefix) {
		num, after, ok := strings.Cut(rest[len(roundsPrefix):], "$")
		if !ok {
			return 0, false, "", fmt.Errorf("crypt: setting has rounds= but no salt after it")
		}
		n, perr := strconv.ParseUint(num, 10, 64)
		if perr != nil {
			return 0, false, "", fmt.Errorf("crypt: rounds %q is not a number", num)
		}
		switch {
		case n < MinRounds:
			n = MinRounds
		case n > MaxRounds:
			n = MaxRounds
		}
		rounds, explicit, rest = int(n), true, after
	}
	// The salt ends at the next '$' and is at most 16 characters.
	if j := strings.IndexByte(rest, '$'); j >= 0 {
		rest = rest[:j]
	}
	if len(rest) > maxSalt {
		rest = rest[:maxSalt]
	}
	return rounds, explicit, rest, nil
}

// digest is the algorithm of the specification, steps 1–21.
func digest(p, s []byte, rounds int) []byte {
	// Digest B: password, salt, password.
	hb := sha512.New()
	hb.Write(p)
	hb.Write(s)
	hb.Write(p)
	b := hb.Sum(nil)

	// Digest A: password, salt, then as many bytes of B as the password is
	// long, then for each bit of the password length (lowest first) B for
	// a one and the password for a zero.
	ha := sha512.New()
	ha.Write(p)
	ha.Write(s)
	n := len(p)
	for ; n > len(b); n -= len(b) {
		ha.Write(b)
	}
	ha.Write(b[:n])
	for n := len(p); n > 0; n >>= 1 {
		if n&1 == 1 {
			ha.Write(b)
		} else {
			ha.Write(p)
		}
	}
	a := ha.Sum(nil)

	// Digest DP: the password once per password byte; P is the first
	// len(password) bytes of DP repeated.
	hdp := sha512.New()
	for range p {
		hdp.Write(p)
	}
	pseq := repeat(hdp.Sum(nil), len(p))

	// Digest DS: the salt 16+A[0] times; S is the first len(salt) bytes.
	hds := sha512.New()
	for i := 0; i < 16+int(a[0]); i++ {
		hds.Write(s)
	}
	sseq := repeat(hds.Sum(nil), len(s))

	// The rounds.
	c := a
	h := sha512.New()
	for i := 0; i < rounds; i++ {
		h.Reset()
		if i&1 == 1 {
			h.Write(pseq)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sseq)
		}
		if i%7 != 0 {
			h.Write(pseq)
		}
		if i&1 == 1 {
			h.Write(c)
		} else {
			h.Write(pseq)
		}
		c = h.Sum(c[:0:0])
	}
	return c
}

func repeat(d []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		k := n - len(out)
		if k > len(d) {
			k = len(d)
		}
		out = append(out, d[:k]...)
	}
	return out
}

// order is the specification's permutation of the 64 digest bytes into
// 21 groups of three, each written as four characters; byte 63 comes last
// as two characters.
var order = [21][3]int{
	{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4},
	{47, 5, 26}, {6, 27, 48}, {28, 49, 7}, {50, 8, 29}, {9, 30, 51},
	{31, 52, 10}, {53, 11, 32}, {12, 33, 54}, {34, 55, 13}, {56, 14, 35},
	{15, 36, 57}, {37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19},
	{62, 20, 41},
}

func encode(sum []byte) string {
	out := make([]byte, 0, 86)
	put := func(w uint32, n int) {
		for ; n > 0; n-- {
			out = append(out, alphabet[w&0x3f])
			w >>= 6
		}
	}
	for _, g := range order {
		put(uint32(sum[g[0]])<<16|uint32(sum[g[1]])<<8|uint32(sum[g[2]]), 4)
	}
	put(uint32(sum[63]), 2)
	return string(out)
}
