// Package sshd is keso's built-in SSH server (golang.org/x/crypto/ssh): the
// way into a node that has no other userland daemon.
//
// What it does, and how it maps to the config (`keso.ssh`):
//   - Host keys (ed25519, and RSA 3072 signing with rsa-sha2-512/256 only,
//     for clients that predate ed25519) are generated once and kept under
//     KeyDir (/var/lib/keso/ssh, on the state partition when installed), so
//     a node keeps its identity across boots and upgrades. Making the RSA
//     key takes seconds on a Raspberry Pi, once, at first boot. An ECDSA
//     key left by an earlier keso is no longer offered: ssh-audit fails the
//     NIST curves.
//   - Algorithms: only what ssh-audit passes (KeyExchanges, Ciphers, MACs):
//     ML-KEM/curve25519 key exchange, AEAD ciphers, encrypt-then-MAC MACs,
//     and strict key exchange (Terrapin).
//   - Public-key auth for `rancher` against ~rancher/.ssh/authorized_keys
//     (written by the users phase), read at each attempt so that keys
//     fetched later in the boot work without a restart. Another account in
//     /etc/passwd (one a config's run_cmd adds) logs in with the keys in
//     its own home, as with OpenSSH. root may log in only
//     with `root_login: true`, with the keys in /root/.ssh/authorized_keys
//     and rancher's keys ("let the authorized keys log in as root too").
//   - Password auth only with `password_auth: true` and a PasswordChecker;
//     without a checker the server says so on the console and offers
//     public keys only.
//   - Sessions: a PTY shell (window changes followed), `exec` requests run
//     with `SHELL -c` and return the exit status (or the signal), signals,
//     the `sftp` subsystem (which also serves OpenSSH's scp, SFTP-based since
//     OpenSSH 9.0), and port forwarding (below; `ssh -L 6443:127.0.0.1:6443`
//     reaches the k3s API).
//   - Processes run as the logged-in user (uid, gid, supplementary groups
//     from /etc/passwd and /etc/group) with HOME, USER, LOGNAME, SHELL, PATH
//     set, in the user's home directory. SFTP too (SFTPCommand, run as the
//     user; in-process only when the user's uid and gid are the server's
//     own), so it reads and writes exactly what the user's shell could: the
//     kernel draws the line, not a chroot.
//   - Limits, each OpenSSH's namesake with its default: max_auth_tries (6)
//     failed attempts per connection, login_grace_time (2m) to log in,
//     max_startups (10) connections logging in at once (more are closed at
//     once), and idle_timeout (off): a logged-in connection with no byte
//     either way for that long is closed (a plain idle timeout, not
//     ClientAliveInterval).
//   - Forwarding: local (ssh -L) unless allow_tcp_forwarding is no or
//     remote; remote (ssh -R, on 127.0.0.1 only, below port 1024 for root
//     only) with allow_tcp_forwarding remote or all; the agent (ssh -A)
//     with allow_agent_forwarding. X11 is always refused.
//
// Wiring in the system stage (the SFTP helper is keso-init itself: its
// main must call SFTPMain when started as `keso-init sftp-server`; the
// binary must be executable by the users who log in):
//
//	exe, _ := os.Executable()
//	srv := &sshd.Server{Config: sshd.ConfigFrom(result.Config), FS: host.FS{Root: "/"},
//		Host: host.Linux{}, Passwords: sshd.Shadow{FS: host.FS{Root: "/"}},
//		SFTPCommand: []string{exe, "sftp-server"}, Log: console}
//	go srv.ListenAndServe(ctx)
//
// Whatever forwarding is refused gets a console line.
// authorized_keys options (command=, from=, restrict) are not interpreted:
// a key with options is ignored with a console line, never silently given
// more than its options allow.
//
// Side effects: the sessions' processes (shells, commands, the SFTP
// server) and the forwarded connections it opens for a client.
package sshd
