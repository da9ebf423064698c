package crypt

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// The SHA-512 test vectors published with the specification "Unix crypt
// using SHA-256 and SHA-512".
var specVectors = []struct{ setting, password, want string }{
	{"$6$saltstring", "Hello world!",
		"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
	{"$6$rounds=10000$saltstringsaltstring", "Hello world!",
		"$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."},
	{"$6$rounds=5000$toolongsaltstring", "This is just a test",
		"$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"},
	{"$6$rounds=1400$anotherlongsaltstring", "a very much longer text to encrypt.  This one even stretches over morethan one line.",
		"$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"},
	{"$6$rounds=77777$short", "we have a short salt string but not a short password",
		"$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"},
	{"$6$rounds=123456$asaltof16chars..", "a short string",
		"$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1"},
	{"$6$rounds=10$roundstoolow", "the minimum number is still observed",
		"$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."},
}

func TestCryptSpecVectors(t *testing.T) {
	for _, v := range specVectors {
		got, err := Crypt(v.password, v.setting)
		if err != nil {
			t.Fatalf("Crypt(%q): %v", v.setting, err)
		}
		if got != v.want {
			t.Errorf("Crypt(%q, %q)\n got %s\nwant %s", v.password, v.setting, got, v.want)
		}
		if err := Verify(v.want, v.password); err != nil {
			t.Errorf("Verify(%s, %q) = %v, want nil", v.want, v.password, err)
		}
		if err := Verify(v.want, v.password+"x"); !errors.Is(err, ErrMismatch) {
			t.Errorf("Verify with a wrong password = %v, want ErrMismatch", err)
		}
	}
}

// TestCryptAgainstOpenSSL cross-checks passwords of many lengths (every
// branch of the length-bit loop and of the 64-byte block loop) with an
// independent implementation, openssl passwd -6.
func TestCryptAgainstOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("SKIP: openssl not installed (Debian package openssl); the spec vectors still ran")
	}
	// openssl prints <NULL> for an empty password, so length 0 is not compared.
	for _, n := range []int{1, 2, 7, 63, 64, 65, 128, 130, 200} {
		pw := strings.Repeat("pässwörd-", 30)[:n]
		for _, salt := range []string{"a", "saltsaltsaltsalt", "x.y/Z9"} {
			out, err := exec.Command("openssl", "passwd", "-6", "-salt", salt, pw).Output()
			if err != nil {
				t.Fatalf("openssl passwd: %v", err)
			}
			want := strings.TrimSpace(string(out))
			got, err := Crypt(pw, "$6$"+salt)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("len %d salt %q: got %s, openssl %s", n, salt, got, want)
			}
		}
	}
}

func TestHashVerifies(t *testing.T) {
	h, err := Hash("rancher")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$6$") || len(h) != len("$6$")+16+1+86 {
		t.Fatalf("Hash = %q, want $6$ + 16-char salt + $ + 86 chars", h)
	}
	if err := Verify(h, "rancher"); err != nil {
		t.Errorf("Verify(own hash) = %v", err)
	}
	if err := Verify(h, "Rancher"); !errors.Is(err, ErrMismatch) {
		t.Errorf("Verify(wrong) = %v, want ErrMismatch", err)
	}
	h2, _ := Hash("rancher")
	if h2 == h {
		t.Errorf("two hashes of the same password are equal (%s): salt is not random", h)
	}
}

func TestVerifyRejects(t *testing.T) {
	// Locked or empty shadow fields and other algorithms never verify, and
	// are not reported as a mere mismatch.
	for _, h := range []string{"", "*", "!", "!$6$salt$abc", "$1$abc$def", "$y$j9T$salt$hash", "$6$salt$"} {
		err := Verify(h, "")
		if err == nil || errors.Is(err, ErrMismatch) {
			t.Errorf("Verify(%q, \"\") = %v, want an unsupported/malformed error", h, err)
		}
	}
}

func TestIsHash(t *testing.T) {
	for s, want := range map[string]bool{
		"$6$salt$abc": true, "$6$rounds=5000$salt$abc": true, "$y$j9T$s$h": true,
		"secret": false, "$notahash": false, "$6$": false, "": false, "$$x$y": false,
	} {
		if got := IsHash(s); got != want {
			t.Errorf("IsHash(%q) = %v, want %v", s, got, want)
		}
	}
}

func BenchmarkCrypt5000(b *testing.B) {
	for b.Loop() {
		if _, err := Crypt("password", "$6$saltstring"); err != nil {
			b.Fatal(err)
		}
	}
}
