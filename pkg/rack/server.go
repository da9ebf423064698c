package rack

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Neighbors maps a client's IP address to its MAC (the kernel's ARP
// table: ProcARP).
type Neighbors interface {
	MAC(ip string) (mac string, ok bool)
}

// Server answers the HTTP side of a netboot: the chain script, each
// machine's script, the kernel, initrd and root, the configs and the
// nodes' reports. It records every step in its State.
type Server struct {
	Base      string            // the URL nodes reach this server at, like http://10.0.0.1
	Machines  fs.FS             // default.yaml and machines/
	Artifacts fs.FS             // keso-build's output folder
	Arches    map[string]Arch   // LoadArches(Artifacts)
	IPXE      map[string]string // UEFI HTTP boot: file name under /ipxe/ → path on disk
	State     *State
	Neighbors Neighbors // nil: no MAC check (documented as unsafe beyond one L2 segment)
	Now       func() time.Time
}

var machinePath = regexp.MustCompile(`^/m/([0-9a-f]{2}(?:-[0-9a-f]{2}){5})/(.+)$`)

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	switch {
	case r.URL.Path == "/ipxe" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "text/plain")
		w.Write(ChainScript(s.Base))
		s.record(Event{MAC: s.macOf(ip), IP: ip, Step: StepIPXE, Detail: "iPXE running: chain script sent"})
	case strings.HasPrefix(r.URL.Path, "/ipxe/") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		// UEFI HTTP boot asks with HEAD first, for the size.
		s.serveIPXE(w, r, ip)
	default:
		m := machinePath.FindStringSubmatch(r.URL.Path)
		if m == nil {
			http.NotFound(w, r)
			return
		}
		s.serveMachine(w, r, ip, m[1], m[2])
	}
}

func (s *Server) serveIPXE(w http.ResponseWriter, r *http.Request, ip string) {
	name := strings.TrimPrefix(r.URL.Path, "/ipxe/")
	p, ok := s.IPXE[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(p)
	if err != nil {
		http.Error(w, "not available", http.StatusNotFound)
		return
	}
	defer f.Close()
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, name, time.Time{}, f)
	d := fmt.Sprintf("HTTP boot: sent %s (%d bytes)", name, cw.n)
	if r.Method == http.MethodHead {
		d = fmt.Sprintf("HTTP boot: size of %s asked (HEAD)", name)
	}
	s.record(Event{MAC: s.macOf(ip), IP: ip, Step: StepIPXE, Detail: d})
}

func (s *Server) serveMachine(w http.ResponseWriter, r *http.Request, ip, mac, rest string) {
	switch {
	case rest == "boot.ipxe" && r.Method == http.MethodGet:
		q := r.URL.Query()
		arch := ArchOf(q.Get("arch"))
		a, ok := s.Arches[arch]
		if !ok {
			s.refuse(w, mac, ip, http.StatusNotFound, fmt.Sprintf("no netboot build for iPXE arch %q (this server has %s)", q.Get("arch"), s.archNames()))
			return
		}
		m, err := s.machine(mac, q.Get("uuid"), arch)
		if err != nil {
			s.refuse(w, mac, ip, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(MachineScript(s.Base, m, a, q.Get("platform")))
		s.record(Event{MAC: mac, IP: ip, Step: StepIPXE, Detail: fmt.Sprintf("script: %s, mode %s, %s %s, %s", m.Hostname, m.Mode, arch, q.Get("platform"), m.File)})
	case strings.HasSuffix(rest, "/config") && r.Method == http.MethodGet:
		arch := strings.TrimSuffix(rest, "/config")
		if _, ok := s.Arches[arch]; !ok {
			http.NotFound(w, r)
			return
		}
		if !s.allowed(w, mac, ip) {
			return
		}
		m, err := s.machine(mac, r.URL.Query().Get("uuid"), arch)
		if err != nil {
			s.refuse(w, mac, ip, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/yaml")
		w.Write(m.Config)
		s.record(Event{MAC: mac, IP: ip, Step: StepConfig, Detail: fmt.Sprintf("sent %s (%d bytes), hostname %s", m.File, len(m.Config), m.Hostname)})
	case rest == "report" && r.Method == http.MethodPost:
		if !s.allowed(w, mac, ip) {
			return
		}
		var rep struct{ Step, Detail string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&rep); err != nil || !reportStep.MatchString(rep.Step) {
			http.Error(w, `expected {"step": "installed", "detail": "…"}`, http.StatusBadRequest)
			return
		}
		if rep.Step == StepInstalled {
			if err := s.State.SetInstalled(mac, true); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		s.record(Event{MAC: mac, IP: ip, Step: rep.Step, Detail: clip(rep.Detail, 200)})
	case rest == "report/log" && r.Method == http.MethodPost:
		if !s.allowed(w, mac, ip) {
			return
		}
		n, err := s.State.SaveLog(mac, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.record(Event{MAC: mac, IP: ip, Step: StepLog, Detail: fmt.Sprintf("boot log saved: %s (%d bytes)", s.State.LogPath(mac), n)})
	default:
		arch, file, _ := strings.Cut(rest, "/")
		a, ok := s.Arches[arch]
		step := ""
		for st, f := range Files {
			if f == file {
				step = st
			}
		}
		if !ok || step == "" || r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.NotFound(w, r)
			return
		}
		f, err := s.Artifacts.Open(path.Join(a.Dir, file))
		if err != nil {
			http.Error(w, "not available", http.StatusNotFound)
			return
		}
		defer f.Close()
		rs, ok := f.(io.ReadSeeker)
		if !ok {
			http.Error(w, "not seekable", http.StatusInternalServerError)
			return
		}
		cw := &countingWriter{ResponseWriter: w}
		http.ServeContent(cw, r, file, time.Time{}, rs)
		detail := fmt.Sprintf("sent %s/%s (%d bytes)", arch, file, cw.n)
		if rg := r.Header.Get("Range"); rg != "" {
			detail += " for " + rg
		}
		s.record(Event{MAC: mac, IP: ip, Step: step, Detail: detail})
	}
}

var reportStep = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// machine looks a machine up, switching install to local once it has
// installed.
func (s *Server) machine(mac, uuid, arch string) (Machine, error) {
	m, err := Lookup(s.Machines, mac, uuid, arch)
	if err != nil {
		return m, err
	}
	if m.Mode == Install && s.State.Installed(mac) {
		m.Mode = Local
	}
	return m, nil
}

// allowed checks that the client at ip is the machine mac.
func (s *Server) allowed(w http.ResponseWriter, mac, ip string) bool {
	if s.Neighbors == nil {
		return true
	}
	got, ok := s.Neighbors.MAC(ip)
	if ok && got == mac {
		return true
	}
	why := fmt.Sprintf("%s asked for %s's config or report, but the neighbour table has %s for it", ip, mac, cmpOr(got, "no entry"))
	s.refuse(w, mac, ip, http.StatusForbidden, why)
	return false
}

func (s *Server) refuse(w http.ResponseWriter, mac, ip string, code int, why string) {
	http.Error(w, why, code)
	s.record(Event{MAC: mac, IP: ip, Step: StepRefused, Detail: why})
}

func (s *Server) macOf(ip string) string {
	if s.Neighbors == nil {
		return ""
	}
	m, _ := s.Neighbors.MAC(ip)
	return m
}

func (s *Server) archNames() string {
	var n []string
	for k := range s.Arches {
		n = append(n, k)
	}
	return strings.Join(n, ", ")
}

func (s *Server) record(e Event) {
	if s.Now != nil {
		e.Time = s.Now()
	} else {
		e.Time = time.Now()
	}
	s.State.Record(e)
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ProcARP reads the kernel's neighbour table, /proc/net/arp.
type ProcARP struct{ Path string }

// MAC returns the MAC of ip in the table.
func (p ProcARP) MAC(ip string) (string, bool) {
	name := cmpOr(p.Path, "/proc/net/arp")
	data, err := os.ReadFile(name)
	if err != nil {
		return "", false
	}
	return parseARP(data, ip)
}

// parseARP finds ip in /proc/net/arp's table (IP, HW type, flags, MAC,
// mask, device); an incomplete entry (flags 0x0) does not count.
func parseARP(data []byte, ip string) (string, bool) {
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != ip || f[2] == "0x0" {
			continue
		}
		m, err := NormalMAC(f[3])
		return m, err == nil
	}
	return "", false
}

// State is the server's folder: the event log (events.jsonl), the
// machines that installed (installed/<mac>) and the nodes' boot logs
// (logs/<mac>.log).
type State struct {
	Dir string
	Out io.Writer // each event is also printed here as it happens
	mu  sync.Mutex
}

// OpenState makes the state folder.
func OpenState(dir string, out io.Writer) (*State, error) {
	for _, d := range []string{dir, filepath.Join(dir, "installed"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("state folder: %w", err)
		}
	}
	return &State{Dir: dir, Out: out}, nil
}

// EventsFile is the event log's name in the state folder.
const EventsFile = "events.jsonl"

// Record appends e to the event log and prints it.
func (s *State) Record(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Out != nil {
		fmt.Fprintln(s.Out, e)
	}
	line, _ := json.Marshal(e)
	f, err := os.OpenFile(filepath.Join(s.Dir, EventsFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		if s.Out != nil {
			fmt.Fprintf(s.Out, "netboot: event log: %v\n", err)
		}
		return
	}
	defer f.Close()
	f.Write(append(line, '\n'))
}

// Installed says whether mac reported an install.
func (s *State) Installed(mac string) bool {
	_, err := os.Stat(filepath.Join(s.Dir, "installed", mac))
	return err == nil
}

// SetInstalled marks mac installed (or not).
func (s *State) SetInstalled(mac string, yes bool) error {
	p := filepath.Join(s.Dir, "installed", mac)
	if !yes {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return os.WriteFile(p, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
}

// MaxLog bounds a boot log a node posts.
const MaxLog = 1 << 20

// LogPath is where mac's boot log is kept.
func (s *State) LogPath(mac string) string { return filepath.Join(s.Dir, "logs", mac+".log") }

// SaveLog replaces mac's boot log with r (at most MaxLog bytes).
func (s *State) SaveLog(mac string, r io.Reader) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Join(s.Dir, "logs"), ".log-*")
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(tmp, io.LimitReader(r, MaxLog))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.LogPath(mac))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return n, fmt.Errorf("save the boot log of %s: %w", mac, err)
	}
	return n, nil
}
