// Package mountinfo parses /proc/self/mountinfo (proc(5)): the one parser
// that keso check, k3s's preparation, data disks, shutdown and the host
// seam share.
package mountinfo

import (
	"fmt"
	"strconv"
	"strings"
)

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	Dev        string // major:minor of the file system
	MountPoint string
	Root       string
	Options    string   // per-mount options (rw, nosuid, …)
	Optional   []string // propagation: shared:N, master:N, …
	FSType     string
	Source     string
	Super      string // super-block options
}

// Parse parses the text of a mountinfo file (proc(5)).
func Parse(s string) ([]Mount, error) {
	var out []Mount
	for i, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		sep := -1
		for j := 6; j < len(f); j++ {
			if f[j] == "-" {
				sep = j
				break
			}
		}
		if len(f) < 10 || sep < 0 || sep+3 > len(f) {
			return nil, fmt.Errorf("mountinfo line %d: cannot parse %q", i+1, line)
		}
		m := Mount{
			Dev: f[2], Root: unescape(f[3]), MountPoint: unescape(f[4]), Options: f[5],
			Optional: f[6:sep], FSType: f[sep+1], Source: unescape(f[sep+2]),
		}
		if sep+3 < len(f) {
			m.Super = f[sep+3]
		}
		out = append(out, m)
	}
	return out, nil
}

// unescape decodes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Containing returns the mount that holds path: the last-mounted entry
// with the longest mount point that is path or a parent of it.
func Containing(mounts []Mount, path string) (Mount, bool) {
	best, found := Mount{}, false
	for _, m := range mounts {
		mp := m.MountPoint
		if path == mp || mp == "/" || strings.HasPrefix(path, mp+"/") {
			if !found || len(mp) >= len(best.MountPoint) {
				best, found = m, true
			}
		}
	}
	return best, found
}
