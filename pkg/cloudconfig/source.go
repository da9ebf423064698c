package cloudconfig

import (
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Source is one place config came from, in merge order.
type Source struct {
	// Name is shown in diagnostics: a file path, "cidata:user-data",
	// "http://…", or "kernel command line".
	Name string
	// Data is the raw user-data: YAML (with or without a `#cloud-config`
	// header) or a script starting with `#!`.
	Data []byte
	// Cmdline marks Data as a kernel command line rather than YAML.
	Cmdline bool
}

// Script is a user-data that was a script rather than YAML. It runs after
// the run_cmd entries, in source order.
type Script struct {
	Source  string
	Content string
}

// origins remembers which source and line each node came from, across merges.
type origins struct {
	file       map[*yaml.Node]string
	splittable map[*yaml.Node]bool   // command-line scalars that may be lists
	written    map[*yaml.Node]string // key node → its path as the user wrote it (spelling.go)
}

func newOrigins() *origins {
	return &origins{file: map[*yaml.Node]string{}, splittable: map[*yaml.Node]bool{}, written: map[*yaml.Node]string{}}
}

func (o *origins) position(n *yaml.Node) (file string, line, col int) {
	return o.file[n], n.Line, n.Column
}

// mark records file as the origin of every node under n.
func (o *origins) mark(n *yaml.Node, file string) {
	stack := []*yaml.Node{n}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, done := o.file[x]; done {
			continue // aliases share nodes
		}
		o.file[x] = file
		stack = append(stack, x.Content...)
	}
}

// parsed is one source after parsing: a root mapping (or nil) or a script.
type parsed struct {
	root   *yaml.Node
	script *Script
}

// parseSource parses one YAML or script source and folds its k3os: block
// into keso:. Syntax errors are returned as diagnostics.
func parseSource(src Source, o *origins) (parsed, Diagnostics) {
	data := bytes.TrimPrefix(src.Data, []byte("\xef\xbb\xbf"))
	if bytes.HasPrefix(data, []byte("#!")) {
		return parsed{script: &Script{Source: src.Name, Content: string(data)}}, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return parsed{}, Diagnostics{syntaxDiagnostic(src.Name, err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return parsed{}, nil // empty document
	}
	root := doc.Content[0]
	o.mark(root, src.Name)
	if isNull(root) {
		return parsed{}, nil
	}
	if root.Kind != yaml.MappingNode {
		file, line, col := o.position(root)
		return parsed{}, Diagnostics{{File: file, Line: line, Column: col, Severity: Error,
			Message: "a cloud-config must be a mapping (key: value) at the top level, got " + describe(root)}}
	}
	canonicalize(root, o)
	root, diags := foldK3OS(root, o)
	return parsed{root: root}, diags
}

// syntaxDiagnostic turns a yaml.v3 error ("yaml: line 3: …") into a
// positioned diagnostic.
func syntaxDiagnostic(file string, err error) Diagnostic {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, tail, ok := strings.Cut(rest, ":"); ok {
			fmt.Sscanf(n, "%d", &line)
			msg = strings.TrimSpace(tail)
		}
	}
	col := 0
	if line > 0 {
		col = 1
	}
	return Diagnostic{File: file, Line: line, Column: col, Severity: Error, Message: "YAML syntax: " + msg}
}

// foldK3OS merges a document's k3os: block into its keso: block; keso:
// wins key by key, with a warning for each key set in both.
func foldK3OS(root *yaml.Node, o *origins) (*yaml.Node, Diagnostics) {
	ki, si := -1, -1
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "k3os":
			ki = i
		case "keso":
			si = i
		}
	}
	if ki < 0 {
		return root, nil
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: root.Line, Column: root.Column}
	o.file[out] = o.file[root]
	var diags Diagnostics
	k3osVal := root.Content[ki+1]
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch {
		case i == ki && si >= 0:
			continue // folded into keso below
		case i == ki:
			key := *k
			key.Value = "keso"
			o.file[&key] = o.file[k]
			o.written[&key] = o.written[k]
			out.Content = append(out.Content, &key, v)
		case i == si:
			if v.Kind == yaml.MappingNode && k3osVal.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(v.Content); j += 2 {
					if kk := findKey(k3osVal, v.Content[j].Value); kk != nil {
						file, line, col := o.position(v.Content[j])
						diags = append(diags, Diagnostic{File: file, Line: line, Column: col, Severity: Warning,
							Path:    "keso." + v.Content[j].Value,
							Message: fmt.Sprintf("both k3os.%s (line %d) and keso.%s are set; keso.%[1]s wins", v.Content[j].Value, kk.Line, v.Content[j].Value)})
					}
				}
				out.Content = append(out.Content, k, mergeNodes(k3osVal, v, o))
			} else {
				file, line, col := o.position(k)
				diags = append(diags, Diagnostic{File: file, Line: line, Column: col, Severity: Warning, Path: "keso",
					Message: "both k3os: and keso: are set; keso: wins"})
				out.Content = append(out.Content, k, v)
			}
		default:
			out.Content = append(out.Content, k, v)
		}
	}
	return out, diags
}

func findKey(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i]
		}
	}
	return nil
}

// mergeNodes returns base overlaid with over: mappings merge key by key
// (recursively), anything else in over replaces what base had. Neither
// input is modified.
func mergeNodes(base, over *yaml.Node, o *origins) *yaml.Node {
	for base != nil && base.Kind == yaml.AliasNode && base.Alias != nil {
		base = base.Alias
	}
	for over.Kind == yaml.AliasNode && over.Alias != nil {
		over = over.Alias
	}
	if base != nil && isNull(over) {
		return base // `key:` with no value sets nothing
	}
	if base == nil || base.Kind != yaml.MappingNode || over.Kind != yaml.MappingNode {
		return over
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: over.Line, Column: over.Column}
	o.file[out] = o.file[over]
	out.Content = append(out.Content, base.Content...)
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i], over.Content[i+1]
		replaced := false
		for j := 0; j+1 < len(out.Content); j += 2 {
			if out.Content[j].Value == k.Value {
				out.Content[j], out.Content[j+1] = k, mergeNodes(out.Content[j+1], v, o)
				replaced = true
				break
			}
		}
		if !replaced {
			out.Content = append(out.Content, k, v)
		}
	}
	return out
}
