package sshd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/keso-os/keso/pkg/host"
)

// User is an account that may log in.
type User struct {
	Name   string
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups
	Home   string
	Shell  string
}

// defaultUsers are used when /etc/passwd does not list the account (k3OS
// compatibility: rancher is uid 1000).
var defaultUsers = map[string]User{
	"root":    {Name: "root", UID: 0, GID: 0, Home: "/root", Shell: "/bin/sh"},
	"rancher": {Name: "rancher", UID: 1000, GID: 1000, Home: "/home/rancher", Shell: "/bin/sh"},
}

// lookupUser finds name in /etc/passwd (and its groups in /etc/group) under
// fsys, falling back to the built-in root and rancher accounts.
func lookupUser(fsys host.FS, name string) (User, error) {
	u, found := User{}, false
	b, err := fsys.ReadFile("/etc/passwd")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return User{}, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || f[0] != name {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return User{}, fmt.Errorf("/etc/passwd: bad ids for %s: %q", name, sc.Text())
		}
		u = User{Name: name, UID: uint32(uid), GID: uint32(gid), Home: f[5], Shell: f[6]}
		found = true
		break
	}
	if !found {
		d, ok := defaultUsers[name]
		if !ok {
			return User{}, fmt.Errorf("no user %q", name)
		}
		u = d
	}
	if u.Home == "" {
		u.Home = "/"
	}
	if u.Shell == "" {
		u.Shell = "/bin/sh"
	}
	if gb, err := fsys.ReadFile("/etc/group"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(gb))
		for sc.Scan() {
			f := strings.Split(sc.Text(), ":")
			if len(f) < 4 {
				continue
			}
			gid, err := strconv.ParseUint(f[2], 10, 32)
			if err != nil || uint32(gid) == u.GID {
				continue
			}
			for _, m := range strings.Split(f[3], ",") {
				if m == name {
					u.Groups = append(u.Groups, uint32(gid))
				}
			}
		}
	}
	return u, nil
}

// authorizedKeys parses an authorized_keys file. Keys with options are
// returned apart: the server does not interpret options, so it refuses
// those keys rather than grant more than the options allow.
func authorizedKeys(b []byte) (keys []ssh.PublicKey, withOptions []string) {
	for len(bytes.TrimSpace(b)) > 0 {
		k, _, opts, rest, perr := ssh.ParseAuthorizedKey(b)
		if perr != nil {
			// ParseAuthorizedKey skips unparsable lines until it finds a
			// key; an error here means no key is left.
			break
		}
		b = rest
		if len(opts) > 0 {
			withOptions = append(withOptions, ssh.FingerprintSHA256(k))
			continue
		}
		keys = append(keys, k)
	}
	return keys, withOptions
}

// keyFiles are the authorized_keys files that let u log in.
func keyFiles(u User, rancherHome string) []string {
	files := []string{path.Join(u.Home, ".ssh/authorized_keys")}
	if u.Name == "root" {
		files = append(files, path.Join(rancherHome, ".ssh/authorized_keys"))
	}
	return files
}
