package sshd

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// forward serves a direct-tcpip channel (ssh -L): it connects to the
// requested host:port from the node and copies both ways.
func (s *Server) forward(nc ssh.NewChannel, user string) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		nc.Reject(ssh.ConnectionFailed, "bad direct-tcpip request")
		return
	}
	addr := net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		c.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	s.logf("%s: forward to %s", user, addr)
	pipe(ch, c)
}

// pipe copies between a channel and a socket until both ends are done,
// then closes both.
func pipe(ch ssh.Channel, c net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		io.Copy(c, ch)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		io.Copy(ch, c)
		ch.CloseWrite()
	}()
	wg.Wait()
	ch.Close()
	c.Close()
}

// remoteForwards are one connection's listeners for ssh -R
// (tcpip-forward), closed when the connection ends.
type remoteForwards struct {
	srv  *Server
	conn ssh.Conn
	user User

	mu  sync.Mutex
	lns map[string]net.Listener // by the address the client named, with the bound port
}

// add serves a tcpip-forward request: it listens on the loopback address
// only (OpenSSH's GatewayPorts no), and on a port below 1024 only for
// root. It returns the reply's payload (the port, when the client asked
// for any port).
func (rf *remoteForwards) add(payload []byte) (bool, []byte) {
	var p struct {
		Addr string
		Port uint32
	}
	if err := ssh.Unmarshal(payload, &p); err != nil || p.Port > 65535 {
		return false, nil
	}
	if p.Port != 0 && p.Port < 1024 && rf.user.UID != 0 {
		rf.srv.logf("%s: remote forwarding of port %d refused: only root may listen below 1024", rf.user.Name, p.Port)
		return false, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p.Port))))
	if err != nil {
		rf.srv.logf("%s: remote forwarding: %v", rf.user.Name, err)
		return false, nil
	}
	port := ln.Addr().(*net.TCPAddr).Port
	key := net.JoinHostPort(p.Addr, strconv.Itoa(port))
	rf.mu.Lock()
	if rf.lns == nil {
		rf.lns = map[string]net.Listener{}
	}
	if old := rf.lns[key]; old != nil {
		old.Close()
	}
	rf.lns[key] = ln
	rf.mu.Unlock()
	rf.srv.logf("%s: remote forward from %s to the client", rf.user.Name, ln.Addr())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				ra, _ := c.RemoteAddr().(*net.TCPAddr)
				orig := struct {
					Addr       string
					Port       uint32
					OriginAddr string
					OriginPort uint32
				}{Addr: p.Addr, Port: uint32(port)}
				if ra != nil {
					orig.OriginAddr, orig.OriginPort = ra.IP.String(), uint32(ra.Port)
				}
				ch, reqs, err := rf.conn.OpenChannel("forwarded-tcpip", ssh.Marshal(orig))
				if err != nil {
					c.Close()
					return
				}
				go ssh.DiscardRequests(reqs)
				pipe(ch, c)
			}()
		}
	}()
	if p.Port == 0 {
		return true, ssh.Marshal(struct{ Port uint32 }{uint32(port)})
	}
	return true, nil
}

// cancel serves cancel-tcpip-forward.
func (rf *remoteForwards) cancel(payload []byte) bool {
	var p struct {
		Addr string
		Port uint32
	}
	if err := ssh.Unmarshal(payload, &p); err != nil {
		return false
	}
	key := net.JoinHostPort(p.Addr, strconv.Itoa(int(p.Port)))
	rf.mu.Lock()
	defer rf.mu.Unlock()
	ln := rf.lns[key]
	if ln == nil {
		return false
	}
	delete(rf.lns, key)
	return ln.Close() == nil
}

func (rf *remoteForwards) closeAll() {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	for k, ln := range rf.lns {
		ln.Close()
		delete(rf.lns, k)
	}
}

// agentListener is a forwarded agent (ssh -A): a socket in a directory
// of its own that only the user can enter, each connection to it a
// channel to the client's agent.
type agentListener struct {
	dir string
	ln  net.Listener
}

// listenAgent makes the socket for u and serves it over conn.
func listenAgent(conn ssh.Conn, u User) (*agentListener, error) {
	dir, err := os.MkdirTemp("", "keso-ssh-agent.")
	if err != nil {
		return nil, fmt.Errorf("agent forwarding: %w", err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err == nil {
		err = os.Chown(sock, int(u.UID), int(u.GID))
	}
	if err == nil {
		err = os.Chown(dir, int(u.UID), int(u.GID)) // the directory is 0700
	}
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		os.RemoveAll(dir)
		return nil, fmt.Errorf("agent forwarding: %w", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				ch, reqs, err := conn.OpenChannel("auth-agent@openssh.com", nil)
				if err != nil {
					c.Close()
					return
				}
				go ssh.DiscardRequests(reqs)
				pipe(ch, c)
			}()
		}
	}()
	return &agentListener{dir: dir, ln: ln}, nil
}

func (a *agentListener) path() string { return filepath.Join(a.dir, "agent.sock") }

func (a *agentListener) close() {
	a.ln.Close()
	os.RemoveAll(a.dir)
}
