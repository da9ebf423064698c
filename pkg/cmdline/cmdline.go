// Package cmdline parses a Linux kernel command line (/proc/cmdline) the way
// the kernel does: parameters are separated by spaces, a value may be wrapped
// in double quotes (`key="a b"`), and a parameter without `=` is a flag.
//
// It is pure and small so that both stages of keso-init and the cloud-config
// merger can share it.
package cmdline

import "strings"

// Param is one kernel command-line parameter.
type Param struct {
	Key      string
	Value    string
	HasValue bool // false for a bare flag such as "quiet"
}

// Params is a parsed command line, in order.
type Params []Param

// Parse splits s into parameters. Quotes follow the kernel's next_arg rules:
// a double quote toggles quoting anywhere in the word and is removed when it
// wraps the value; everything after a lone "--" is for init and is dropped.
func Parse(s string) Params {
	var out Params
	i := 0
	for i < len(s) {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			break
		}
		inQuote := false
		start := i
		for i < len(s) && (inQuote || !isSpace(s[i])) {
			if s[i] == '"' {
				inQuote = !inQuote
			}
			i++
		}
		word := s[start:i]
		if word == "--" {
			break
		}
		out = append(out, parseWord(word))
	}
	return out
}

func parseWord(w string) Param {
	eq := strings.IndexByte(w, '=')
	// A quote before '=' (e.g. "\"a=b\"") quotes the whole word.
	if q := strings.IndexByte(w, '"'); q >= 0 && (eq < 0 || q < eq) {
		w = strings.ReplaceAll(w, `"`, "")
		eq = strings.IndexByte(w, '=')
	}
	if eq < 0 {
		return Param{Key: w}
	}
	key, val := w[:eq], w[eq+1:]
	if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
		val = val[1 : len(val)-1]
	} else {
		val = strings.Trim(val, `"`)
	}
	return Param{Key: key, Value: val, HasValue: true}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// Get returns the value of the last parameter named key, and whether it was
// present at all (a bare flag is present with an empty value).
func (p Params) Get(key string) (string, bool) {
	val, ok := "", false
	for _, x := range p {
		if x.Key == key {
			val, ok = x.Value, true
		}
	}
	return val, ok
}

// Has reports whether key appears, as a flag or with a value.
func (p Params) Has(key string) bool {
	_, ok := p.Get(key)
	return ok
}

// WithPrefix returns the parameters whose key starts with prefix, in order.
func (p Params) WithPrefix(prefix string) Params {
	var out Params
	for _, x := range p {
		if strings.HasPrefix(x.Key, prefix) {
			out = append(out, x)
		}
	}
	return out
}
