package users

import (
	"fmt"
	"strings"

	"github.com/keso-os/keso/pkg/crypt"
)

// Accounts are the contents of /etc/passwd, /etc/group and /etc/shadow.
type Accounts struct {
	Passwd, Group, Shadow []byte
}

// Locked is the shadow password field of an account that cannot log in
// with a password.
const Locked = "*"

// PasswordHash decides the rancher shadow field: Locked for no password, a
// configured crypt hash as it is, the current hash when the configured
// plain password still matches it (so that a reboot changes nothing), or a
// fresh hash from hash.
func PasswordHash(configured, current string, hash func(string) (string, error)) (string, error) {
	switch {
	case configured == "":
		return Locked, nil
	case crypt.IsHash(configured):
		return configured, nil
	case current != "" && crypt.Verify(current, configured) == nil:
		return current, nil
	}
	h, err := hash(configured)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// PlanAccounts returns cur with the rancher account set to the k3OS
// defaults, the given shadow password field and login shell, root added
// when missing, and every other line kept as it was.
func PlanAccounts(cur Accounts, rancherHash, shell string) Accounts {
	rancherPasswd := fmt.Sprintf("%s:x:%d:%d:%s:%s:%s", Rancher, RancherUID, RancherGID, Rancher, RancherHome, shell)
	out := Accounts{
		Passwd: upsert(cur.Passwd, []entry{
			{name: "root", line: func(string) string { return "root:x:0:0:root:/root:/bin/sh" }, keep: true},
			{name: Rancher, line: func(string) string { return rancherPasswd }},
		}),
		Group: upsert(cur.Group, []entry{
			{name: "root", line: func(string) string { return "root:x:0:" }, keep: true},
			{name: Rancher, line: func(old string) string {
				members := ""
				if f := strings.Split(old, ":"); len(f) >= 4 {
					members = f[3]
				}
				return fmt.Sprintf("%s:x:%d:%s", Rancher, RancherGID, members)
			}},
		}),
		Shadow: upsert(cur.Shadow, []entry{
			{name: "root", line: func(string) string { return "root:" + Locked + "::0:99999:7:::" }, keep: true},
			{name: Rancher, line: func(old string) string {
				f := strings.Split(old, ":")
				if len(f) != 9 {
					f = strings.Split(Rancher+":"+Locked+"::0:99999:7:::", ":")
				}
				f[1] = rancherHash
				return strings.Join(f, ":")
			}},
		}),
	}
	return out
}

// entry is one account line that PlanAccounts owns. line computes the
// wanted line from the current one ("" when absent); keep leaves an
// existing line alone and only adds a missing one.
type entry struct {
	name string
	line func(old string) string
	keep bool
}

func upsert(file []byte, want []entry) []byte {
	ls := lines(file)
	for _, e := range want {
		found := false
		for i, l := range ls {
			if name, _, _ := strings.Cut(l, ":"); name == e.name {
				found = true
				if !e.keep {
					ls[i] = e.line(l)
				}
				break
			}
		}
		if !found {
			ls = append(ls, e.line(""))
		}
	}
	return []byte(strings.Join(ls, "\n") + "\n")
}
