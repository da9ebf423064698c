// Package users manages the node's login accounts the k3OS way: the
// `rancher` user (uid 1000, gid 1000, home /home/rancher, shell /bin/bash
// when the image has it, else /bin/sh)
// with the console password from `keso.password` and the SSH keys from
// `ssh_authorized_keys`.
//
// Entry point (one phase, "users"):
//
//	users.Apply(cfg, fsys, users.Options{Fetcher: f}, rec)
//
// It writes /etc/passwd, /etc/group and /etc/shadow (keeping every line it
// does not own, and adding root only if the image lacks it), creates the
// home directory, and writes ~rancher/.ssh/authorized_keys. Everything goes
// through a root-prefixed FS, so tests run on t.TempDir().
//
// Passwords: a value that looks like a crypt hash ("$6$…", "$1$…") is
// stored as it is; plain text is hashed with SHA-512 crypt (pkg/crypt). A
// plain password that already matches the stored hash keeps that hash, so a
// second boot changes nothing. With no password the account is locked for
// password logins ("*"): SSH keys still work, the console refuses logins
// (see pkg/console). The config is the truth: removing `password` locks the
// account again at the next boot.
//
// SSH keys: literal keys are checked with x/crypto/ssh and written as given.
// `github:USER`, `gitlab:USER` and http(s) URLs are fetched through
// Options.Fetcher from <GitHubURL>/USER.keys, <GitLabURL>/USER.keys or the
// URL, and cached under /var/lib/keso/ssh-keys/ (persistent on installed
// systems). With a nil Fetcher (the local phase, before the network is up)
// only the cache is used and an uncached remote entry is not an error; run
// Apply again with a Fetcher once the network is online to refresh. A
// failed fetch with a Fetcher is reported as a failure of that entry; its
// cached keys are still written.
//
// The pure part is PlanAccounts, PasswordHash, ParseKeys and
// AuthorizedKeys; Apply is the thin applier.
package users
