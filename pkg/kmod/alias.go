package kmod

import (
	"bufio"
	"io"
	"path"
	"strings"
)

// Alias is one line of modules.alias: "alias <pattern> <module>". The
// pattern is a shell glob (*, ?, [...]) as depmod writes it.
type Alias struct {
	Pattern string
	Module  string
}

// Aliases is modules.alias in file order.
type Aliases []Alias

// ParseModulesAlias reads a modules.alias file. Lines other than "alias"
// lines (comments, blank) are skipped.
func ParseModulesAlias(r io.Reader) (Aliases, error) {
	var out Aliases
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "alias" {
			continue
		}
		out = append(out, Alias{Pattern: f[1], Module: ModuleName(f[2])})
	}
	return out, sc.Err()
}

// Lookup returns the modules whose alias matches name, each once, in file
// order. Like kmod, '-' and '_' are the same outside bracket expressions.
func (as Aliases) Lookup(name string) []string {
	n := normAlias(name)
	var out []string
	seen := map[string]bool{}
	for _, a := range as {
		if seen[a.Module] {
			continue
		}
		p := normAlias(a.Pattern)
		ok := p == n
		if !ok && strings.ContainsAny(p, "*?[") {
			ok, _ = path.Match(p, n)
		}
		if ok {
			seen[a.Module] = true
			out = append(out, a.Module)
		}
	}
	return out
}

// normAlias replaces '-' by '_' outside [...] (kmod's alias_normalize).
func normAlias(s string) string {
	b := []byte(s)
	in := false
	for i, c := range b {
		switch {
		case c == '[':
			in = true
		case c == ']':
			in = false
		case c == '-' && !in:
			b[i] = '_'
		}
	}
	return string(b)
}
