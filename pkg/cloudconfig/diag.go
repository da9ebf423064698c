package cloudconfig

import (
	"fmt"
	"sort"
	"strings"
)

// Severity tells a warning from an error.
type Severity int

const (
	// Warning: the config still applies (an unknown key is ignored).
	Warning Severity = iota
	// Error: the value is rejected; the phase that needs it reports it.
	Error
)

func (s Severity) String() string {
	if s == Error {
		return "error"
	}
	return "warning"
}

// Diagnostic is one problem found in a config, with its position.
type Diagnostic struct {
	File     string
	Line     int // 1-based; 0 when unknown
	Column   int // 1-based; 0 when unknown
	Severity Severity
	// Path is the config path of the value, e.g. "keso.network.interfaces[0].addresses[1]".
	Path    string
	Message string
}

// String formats d as FILE:LINE:COL: severity: message.
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", d.Line, d.Column)
	}
	fmt.Fprintf(&b, ": %s: %s", d.Severity, d.Message)
	return b.String()
}

// Diagnostics is a list of problems, in file order after Sort.
type Diagnostics []Diagnostic

// Errors returns only the errors.
func (ds Diagnostics) Errors() Diagnostics { return ds.filter(Error) }

// Warnings returns only the warnings.
func (ds Diagnostics) Warnings() Diagnostics { return ds.filter(Warning) }

func (ds Diagnostics) filter(s Severity) Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == s {
			out = append(out, d)
		}
	}
	return out
}

// Sort orders by file, line, column.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// ErrorAt reports whether there is an error at path or below it.
func (ds Diagnostics) ErrorAt(path string) bool {
	for _, d := range ds {
		if d.Severity == Error && (d.Path == path || strings.HasPrefix(d.Path, path+".") || strings.HasPrefix(d.Path, path+"[")) {
			return true
		}
	}
	return false
}
