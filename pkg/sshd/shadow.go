package sshd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/keso-os/keso/pkg/crypt"
	"github.com/keso-os/keso/pkg/host"
)

// Shadow checks passwords against /etc/shadow under FS (SHA-512 crypt,
// the format the users phase writes). Locked ("!…", "*") and empty
// entries never match.
type Shadow struct {
	FS host.FS
}

// CheckPassword implements PasswordChecker.
func (s Shadow) CheckPassword(user, password string) error {
	b, err := s.FS.ReadFile("/etc/shadow")
	if err != nil {
		return fmt.Errorf("check password of %s: %w", user, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 2 || f[0] != user {
			continue
		}
		hash := f[1]
		if hash == "" || strings.HasPrefix(hash, "!") || strings.HasPrefix(hash, "*") {
			return fmt.Errorf("check password of %s: account has no usable password", user)
		}
		if err := crypt.Verify(hash, password); err != nil {
			return fmt.Errorf("check password of %s: %w", user, err)
		}
		return nil
	}
	return errors.New("check password of " + user + ": not in /etc/shadow")
}
