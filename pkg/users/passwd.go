package users

import (
	"fmt"
	"strconv"
	"strings"
)

// The rancher account, as in k3OS.
const (
	Rancher     = "rancher"
	RancherUID  = 1000
	RancherGID  = 1000
	RancherHome = "/home/rancher"
	// RancherShell is rancher's login shell, k3OS's bash, when the image
	// carries it (the profile's admin userland); FallbackShell otherwise.
	RancherShell  = "/bin/bash"
	FallbackShell = "/bin/sh"
)

// Files of the account database, inside the node.
const (
	PasswdFile = "/etc/passwd"
	GroupFile  = "/etc/group"
	ShadowFile = "/etc/shadow"
)

// User is one /etc/passwd entry.
type User struct {
	Name  string
	UID   int
	GID   int
	Home  string
	Shell string
}

// DB is the parsed /etc/passwd and /etc/group of a node.
type DB struct {
	Users  map[string]User
	Groups map[string]int
}

// ParseDB parses /etc/passwd and /etc/group contents. Malformed lines are
// skipped.
func ParseDB(passwd, group []byte) DB {
	db := DB{Users: map[string]User{}, Groups: map[string]int{}}
	for _, l := range lines(passwd) {
		f := strings.Split(l, ":")
		if len(f) < 7 {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		if _, dup := db.Users[f[0]]; !dup {
			db.Users[f[0]] = User{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]}
		}
	}
	for _, l := range lines(group) {
		f := strings.Split(l, ":")
		if len(f) < 3 {
			continue
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		if _, dup := db.Groups[f[0]]; !dup {
			db.Groups[f[0]] = gid
		}
	}
	return db
}

// Owner resolves "user", "user:group", "uid", "uid:gid" (or "" for
// root:root) to numeric ids. A user given alone brings its primary group.
func (db DB) Owner(owner string) (uid, gid int, err error) {
	if owner == "" {
		return 0, 0, nil
	}
	u, g, hasGroup := strings.Cut(owner, ":")
	if n, err := strconv.Atoi(u); err == nil {
		uid, gid = n, n
		if user, ok := db.byUID(n); ok {
			gid = user.GID
		}
	} else {
		user, ok := db.Users[u]
		if !ok {
			return 0, 0, fmt.Errorf("no user %q in %s", u, PasswdFile)
		}
		uid, gid = user.UID, user.GID
	}
	if !hasGroup {
		return uid, gid, nil
	}
	if n, err := strconv.Atoi(g); err == nil {
		return uid, n, nil
	}
	n, ok := db.Groups[g]
	if !ok {
		return 0, 0, fmt.Errorf("no group %q in %s", g, GroupFile)
	}
	return uid, n, nil
}

func (db DB) byUID(uid int) (User, bool) {
	for _, u := range db.Users {
		if u.UID == uid {
			return u, true
		}
	}
	return User{}, false
}

// ShadowHash returns the password field of name in an /etc/shadow content.
func ShadowHash(shadow []byte, name string) (string, bool) {
	for _, l := range lines(shadow) {
		f := strings.Split(l, ":")
		if len(f) >= 2 && f[0] == name {
			return f[1], true
		}
	}
	return "", false
}

// lines splits a file into its lines without the trailing empty one.
func lines(b []byte) []string {
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
