package console

import (
	"strings"
)

// ActiveFile lists the kernel's consoles (console= on the command line),
// the preferred one last.
const ActiveFile = "/sys/class/tty/console/active"

// Devices returns the terminals to run a login on: one per kernel console
// in /sys/class/tty/console/active ("tty0 ttyS0" gives /dev/tty1 and
// /dev/ttyS0; tty0 is "the current virtual terminal", so the login goes on
// the first one). With nothing readable it returns /dev/console.
func Devices(fsys FS) []string {
	b, err := fsys.ReadFile(ActiveFile)
	if err != nil {
		return []string{"/dev/console"}
	}
	var out []string
	seen := map[string]bool{}
	for _, name := range strings.Fields(string(b)) {
		if name == "tty0" {
			name = "tty1"
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, "/dev/"+name)
		}
	}
	if len(out) == 0 {
		return []string{"/dev/console"}
	}
	return out
}
