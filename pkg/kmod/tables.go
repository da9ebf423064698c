package kmod

import "strings"

// ParseLoaded reads /proc/modules: the names of the loaded modules.
func ParseLoaded(b []byte) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			out[ModuleName(f[0])] = true
		}
	}
	return out
}

// ParseBuiltin reads modules.builtin: the names of the modules built into
// the kernel.
func ParseBuiltin(b []byte) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out[ModuleName(l)] = true
		}
	}
	return out
}
