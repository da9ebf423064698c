package cloudconfig

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds how many YAML nodes one decode visits, so that aliases
// cannot expand a small document into an exponential walk.
const maxNodes = 200000

// decoder turns a merged YAML tree into a Config. It never stops at the first
// problem: an unknown key is a warning and is skipped, a value of the wrong
// type is an error and leaves the field at its zero value, and the rest of
// the document is still decoded.
type decoder struct {
	origin  *origins
	diags   Diagnostics
	values  map[string]*yaml.Node // config path → value node, for validation
	keys    map[string]*yaml.Node // config path of a map entry → its key node
	shown   map[string]string     // config path of a struct key → the path as the user wrote it
	visited int
}

func newDecoder(o *origins) *decoder {
	return &decoder{origin: o, values: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}, shown: map[string]string{}}
}

func (d *decoder) report(n *yaml.Node, sev Severity, path, format string, args ...any) {
	file, line, col := d.origin.position(n)
	d.diags = append(d.diags, Diagnostic{File: file, Line: line, Column: col, Severity: sev, Path: path, Message: fmt.Sprintf(format, args...)})
}

var commandType = reflect.TypeFor[Command]()

// decode stores n into v, which is addressable. path names v for messages.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	d.visited++
	if d.visited > maxNodes {
		if d.visited == maxNodes+1 {
			d.report(n, Error, path, "document too large or too deeply aliased (over %d nodes)", maxNodes)
		}
		return
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if isNull(n) {
		return // `key:` with no value leaves the default
	}
	if path != "" {
		d.values[path] = n
	}
	t := v.Type()
	switch {
	case t == commandType:
		d.decodeCommand(n, v, path)
	case t.Kind() == reflect.Pointer:
		p := reflect.New(t.Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case t.Kind() == reflect.Struct:
		d.decodeStruct(n, v, path)
	case t.Kind() == reflect.Slice:
		d.decodeSlice(n, v, path)
	case t.Kind() == reflect.Map:
		d.decodeMap(n, v, path)
	case t.Kind() == reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.report(n, Error, path, "%s: %v", lastKey(path), err)
			return
		}
		v.Set(reflect.ValueOf(&x).Elem())
	default:
		d.decodeScalar(n, v, path)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.report(n, Error, path, "%s: expected a mapping (key: value), got %s", d.displayPath(path), describe(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		sub := joinPath(path, key)
		if w, ok := d.origin.written[k]; ok {
			d.shown[sub] = w
		}
		if prev, dup := seen[key]; dup {
			_, line, _ := d.origin.position(prev)
			first := fmt.Sprintf("line %d", line)
			if w := d.origin.written[prev]; w != "" && w != d.displayPath(sub) {
				first += fmt.Sprintf(" as %q", w)
			}
			d.report(k, Warning, sub, "duplicate key %q (first at %s); the last one wins", d.displayPath(sub), first)
		}
		seen[key] = k
		idx, ok := fields.index[key]
		if !ok {
			msg := fmt.Sprintf("unknown key %q", d.displayPath(sub))
			if s := suggest(key, fields.names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			d.report(k, Warning, sub, "%s (ignored)", msg)
			continue
		}
		d.decode(val, v.FieldByIndex(idx), sub)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	items := n.Content
	switch {
	case n.Kind == yaml.ScalarNode && d.origin.splittable[n]:
		items = splitScalar(n)
	case n.Kind == yaml.ScalarNode:
		items = []*yaml.Node{n} // k3OS's one-element list: `data_sources: hetzner`
	case n.Kind != yaml.SequenceNode:
		d.report(n, Error, path, "%s: expected a list, got %s", d.displayPath(path), describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(items), len(items))
	for i, item := range items {
		d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.report(n, Error, path, "%s: expected a mapping (key: value), got %s", d.displayPath(path), describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.report(k, Error, path, "%s: keys must be strings, got %s", d.displayPath(path), describe(k))
			continue
		}
		sub := path + "." + k.Value
		d.keys[sub] = k
		e := reflect.New(v.Type().Elem()).Elem()
		if isNull(val) && e.Kind() == reflect.String {
			d.values[sub] = val
		} else {
			d.decode(val, e, sub)
		}
		m.SetMapIndex(reflect.ValueOf(k.Value), e)
	}
	v.Set(m)
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.report(n, Error, path, "%s: expected %s, got %s", d.displayPath(path), kindName(v.Kind()), describe(n))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		b, ok := parseBool(n.Value)
		if !ok {
			d.report(n, Error, path, "%s: expected true or false, got %q", d.displayPath(path), n.Value)
			return
		}
		v.SetBool(b)
	case reflect.Int:
		i, err := strconv.Atoi(strings.ReplaceAll(n.Value, "_", ""))
		if err != nil {
			d.report(n, Error, path, "%s: expected a whole number, got %q", d.displayPath(path), n.Value)
			return
		}
		v.SetInt(int64(i))
	default:
		d.report(n, Error, path, "%s: unsupported field type %s", d.displayPath(path), v.Type())
	}
}

func (d *decoder) decodeCommand(n *yaml.Node, v reflect.Value, path string) {
	switch n.Kind {
	case yaml.ScalarNode:
		v.Set(reflect.ValueOf(Command{Shell: n.Value}))
	case yaml.SequenceNode:
		argv := make([]string, 0, len(n.Content))
		for i, a := range n.Content {
			if a.Kind != yaml.ScalarNode {
				d.report(a, Error, fmt.Sprintf("%s[%d]", path, i), "%s: an argv list holds strings, got %s", d.displayPath(path), describe(a))
				return
			}
			argv = append(argv, a.Value)
		}
		if len(argv) == 0 {
			d.report(n, Error, path, "%s: empty argv list", d.displayPath(path))
			return
		}
		v.Set(reflect.ValueOf(Command{Argv: argv}))
	default:
		d.report(n, Error, path, "%s: expected a command line (string) or an argv list, got %s", d.displayPath(path), describe(n))
	}
}

// fieldSet is a struct's YAML keys, inline structs flattened.
type fieldSet struct {
	index map[string][]int
	names []string
	spell map[string]string // every accepted spelling, normKey'd → name (spelling.go)
}

var fieldCache sync.Map // reflect.Type → fieldSet

func structFields(t reflect.Type) fieldSet {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(fieldSet)
	}
	fs := fieldSet{index: map[string][]int{}}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if strings.Contains(opts, "inline") {
			inner := structFields(f.Type)
			for _, n := range inner.names {
				fs.index[n] = append([]int{i}, inner.index[n]...)
				fs.names = append(fs.names, n)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fs.index[name] = []int{i}
		fs.names = append(fs.names, name)
	}
	fs.spell = spellings(t, fs.names)
	fieldCache.Store(t, fs)
	return fs
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null" && (n.Value == "" || n.Value == "~" || strings.EqualFold(n.Value, "null"))
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "yes", "on", "y", "1":
		return true, true
	case "false", "no", "off", "n", "0":
		return false, true
	}
	return false, false
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int", "!!float":
			return "a number (" + n.Value + ")"
		case "!!bool":
			return "a boolean (" + n.Value + ")"
		}
		return fmt.Sprintf("a string (%q)", truncate(n.Value, 40))
	}
	return "something else"
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int:
		return "a whole number"
	}
	return "a string"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func lastKey(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// displayPath is path as the user wrote it: the block (k3os: or keso:)
// and each key in the spelling of the file (dataSources for
// keso.data_sources), from the longest decoded prefix of path.
func (d *decoder) displayPath(path string) string {
	for p := path; p != ""; {
		if w, ok := d.shown[p]; ok {
			return w + path[len(p):]
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return path
}

// splitScalar turns a comma-separated scalar (from the kernel command line)
// into list items.
func splitScalar(n *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	for _, part := range strings.Split(n.Value, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		out = append(out, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: part, Line: n.Line, Column: n.Column})
	}
	return out
}
