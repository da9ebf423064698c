package cloudconfig

import (
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/keso-os/keso/pkg/cmdline"
	"gopkg.in/yaml.v3"
)

// bootParams are keso./k3os. command-line keys that steer the boot itself
// (read by keso-init's initrd stage) rather than the cloud-config.
var bootParams = map[string]bool{
	"live": true, "slot": true, "root": true, "root_sha256": true, "debug": true,
	"mode": true, "fallback_mode": true, "tries": true, "trial": true, "mbr": true,
}

// cmdlineNode builds a config mapping from `keso.<path>=<value>` and
// `k3os.<path>=<value>` kernel parameters, in k3OS's grammar (its README,
// "Kernel cmdline"). Paths follow the schema, in any spelling k3OS accepts
// (k3os.dns_nameserver, k3os.dataSources): a key naming a top-level field
// (hostname, ssh_authorized_keys, …) sets it at the top level, anything
// else goes under keso:. A map entry is key[mapkey]=value
// (k3os.sysctl[kernel.printk]="4 4 1 7"); once a dotted path reaches a map
// (sysctl, labels, environment, k3s.config) the rest of it is one key, so
// keso.sysctl.net.ipv4.ip_forward=1 works too. A list takes a value per
// repetition of its key, each split on commas; a bare flag means true.
// As on k3OS, the top-level fields may also be given without the prefix
// (hostname=edge-7, ssh_authorized_keys=…); other bare parameters are the
// kernel's.
func cmdlineNode(name, line string, o *origins) (*yaml.Node, Diagnostics) {
	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1, Column: 1}
	o.file[root] = name
	var diags Diagnostics
	col, off := 1, 0
	for _, p := range cmdline.Parse(line) {
		if i := strings.Index(line[off:], p.Key); i >= 0 {
			col, off = off+i+1, off+i+len(p.Key)
		}
		prefix, rest, ok := strings.Cut(p.Key, ".")
		switch {
		case ok && (prefix == "keso" || prefix == "k3os") && rest != "":
		case p.HasValue && bareTopLevel(p.Key):
			rest = p.Key
		default:
			continue
		}
		if bootParams[rest] {
			continue
		}
		if !utf8.ValidString(p.Key) || !utf8.ValidString(p.Value) {
			diags = append(diags, Diagnostic{File: name, Line: 1, Column: col, Severity: Warning, Path: rest,
				Message: fmt.Sprintf("%q: not valid UTF-8 (ignored)", p.Key)})
			continue
		}
		segs, err := cmdlinePath(rest)
		if err == nil {
			value := p.Value
			if !p.HasValue {
				value = "true"
			}
			err = setPath(root, reflect.TypeFor[Config](), segs, value, name, col, o)
		}
		if err != nil {
			diags = append(diags, Diagnostic{File: name, Line: 1, Column: col, Severity: Warning, Path: rest,
				Message: fmt.Sprintf("%s: %v (ignored)", p.Key, err)})
		}
	}
	return root, diags
}

// bareTopLevel reports whether a parameter without the keso./k3os. prefix
// names one of the top-level fields k3OS reads from the command line.
func bareTopLevel(key string) bool {
	name, ok := structFields(reflect.TypeFor[Config]()).canonical(key)
	return ok && name != "keso" && name != "write_files"
}

// cmdlinePath splits a parameter's path at its dots; a trailing
// [mapkey] is one more segment, dots and all.
func cmdlinePath(rest string) ([]string, error) {
	base, mapKey, bracket := strings.Cut(rest, "[")
	if !bracket {
		return strings.Split(rest, "."), nil
	}
	mapKey, ok := strings.CutSuffix(mapKey, "]")
	if !ok || mapKey == "" || strings.ContainsAny(mapKey, "[]") || base == "" {
		return nil, fmt.Errorf("want key[mapkey]=value, as in k3os.sysctl[kernel.printk]=\"4 4 1 7\"")
	}
	return append(strings.Split(base, "."), mapKey), nil
}

// setPath walks t along segs, creating mapping nodes under m, and stores
// value as a scalar at the end.
func setPath(m *yaml.Node, t reflect.Type, segs []string, value, file string, col int, o *origins) error {
	if t == reflect.TypeFor[Config]() {
		if name, top := structFields(t).canonical(segs[0]); !top || name == "keso" {
			// Everything not top-level belongs to the system block.
			if segs[0] == "keso" || segs[0] == "k3os" {
				segs = segs[1:]
				if len(segs) == 0 {
					return fmt.Errorf("missing key after keso")
				}
			}
			m = childMapping(m, "keso", file, col, o)
			t = reflect.TypeFor[System]()
		}
	}
	for i, seg := range segs {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			fs := structFields(t)
			name, ok := fs.canonical(seg)
			if !ok {
				names := fs.names
				if t == reflect.TypeFor[System]() && i == 0 {
					names = append(names[:len(names):len(names)], structFields(reflect.TypeFor[Config]()).names...)
				}
				if s := suggest(seg, names); s != "" {
					return fmt.Errorf("unknown key %q; did you mean %q?", seg, s)
				}
				return fmt.Errorf("unknown key %q", seg)
			}
			ft := t.FieldByIndex(fs.index[name]).Type
			if i == len(segs)-1 {
				setScalar(m, name, value, file, col, isList(ft), o)
				return nil
			}
			m = childMapping(m, name, file, col, o)
			t = ft
		case reflect.Map:
			setScalar(m, strings.Join(segs[i:], "."), value, file, col, false, o)
			return nil
		default:
			return fmt.Errorf("%q is not a mapping", strings.Join(segs[:i], "."))
		}
	}
	return nil
}

func isList(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Slice
}

func childMapping(m *yaml.Node, key, file string, col int, o *origins) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.MappingNode {
			return m.Content[i+1]
		}
	}
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: 1, Column: col}
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1, Column: col}
	o.file[k], o.file[v] = file, file
	m.Content = append(m.Content, k, v)
	return v
}

func setScalar(m *yaml.Node, key, value, file string, col int, list bool, o *origins) {
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: 1, Column: col}
	v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Line: 1, Column: col}
	o.file[k], o.file[v] = file, file
	if list {
		o.splittable[v] = true
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			continue
		}
		if prev := m.Content[i+1]; list && (o.splittable[prev] || prev.Kind == yaml.SequenceNode) {
			// A repeated list key adds to the list (k3os.dns_nameserver=1.1.1.1
			// k3os.dns_nameserver=8.8.8.8).
			seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: prev.Line, Column: prev.Column}
			o.file[seq] = file
			if prev.Kind == yaml.SequenceNode {
				seq.Content = append(seq.Content, prev.Content...)
			} else {
				seq.Content = append(seq.Content, splitScalar(prev)...)
			}
			seq.Content = append(seq.Content, splitScalar(v)...)
			for _, item := range seq.Content {
				o.file[item] = file
			}
			m.Content[i+1] = seq
			return
		}
		m.Content[i], m.Content[i+1] = k, v
		return
	}
	m.Content = append(m.Content, k, v)
}
