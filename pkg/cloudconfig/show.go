package cloudconfig

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MarshalYAML writes a Command the way it can be read back: a string for a
// shell command line, a list for an argv.
func (c Command) MarshalYAML() (any, error) {
	if c.Argv != nil {
		return c.Argv, nil
	}
	return c.Shell, nil
}

// String is the command as a user would read it.
func (c Command) String() string {
	if c.Argv != nil {
		return fmt.Sprintf("%q", c.Argv)
	}
	return c.Shell
}

// YAML renders the effective config, with a comment after each top-level
// key (and each key of the keso: block) naming the source that set it.
func (r Result) YAML() ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(r.Config); err != nil {
		// yaml.v3 writes some multi-line strings (leading spaces or a
		// leading line break, inside a list of mappings) as literal blocks
		// it cannot read back (found by FuzzLoad): build the tree here,
		// with such strings double-quoted.
		n, nerr := nodeOf(reflect.ValueOf(r.Config))
		if nerr != nil {
			return nil, fmt.Errorf("encode effective config: %w (and %v)", err, nerr)
		}
		doc = *n
	}
	if doc.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(doc.Content); i += 2 {
			k, v := doc.Content[i], doc.Content[i+1]
			if k.Value != "keso" {
				r.annotate(k, v, k.Value)
			} else if v.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(v.Content); j += 2 {
					r.annotate(v.Content[j], v.Content[j+1], "keso."+v.Content[j].Value)
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("write effective config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if len(r.Scripts) > 0 {
		for _, s := range r.Scripts {
			fmt.Fprintf(&buf, "# plus a user-data script from %s, run after run_cmd\n", s.Source)
		}
	}
	return buf.Bytes(), nil
}

func (r Result) annotate(k, v *yaml.Node, path string) {
	src, ok := r.Origins[path]
	if !ok {
		return
	}
	if v.Kind == yaml.ScalarNode {
		v.LineComment = "from " + src
	} else {
		k.LineComment = "from " + src
	}
}

// nodeOf is the YAML node of v as yaml.v3 would encode it (yaml tags with
// omitempty and inline, sorted map keys, yaml.Marshaler), except that a
// string with a line break is double-quoted.
func nodeOf(v reflect.Value) (*yaml.Node, error) {
	if v.IsValid() && v.CanInterface() {
		if m, ok := v.Interface().(yaml.Marshaler); ok && (v.Kind() != reflect.Pointer || !v.IsNil()) {
			x, err := m.MarshalYAML()
			if err != nil {
				return nil, err
			}
			return nodeOf(reflect.ValueOf(x))
		}
	}
	switch {
	case !v.IsValid(), (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface || v.Kind() == reflect.Map) && v.IsNil():
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return nodeOf(v.Elem())
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if err := structNodes(n, v); err != nil {
			return nil, err
		}
		return n, nil
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i].Interface()) < fmt.Sprint(keys[j].Interface()) })
		for _, k := range keys {
			kn, err := nodeOf(k)
			if err != nil {
				return nil, err
			}
			vn, err := nodeOf(v.MapIndex(k))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, kn, vn)
		}
		return n, nil
	case reflect.Slice, reflect.Array:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for i := range v.Len() {
			in, err := nodeOf(v.Index(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, in)
		}
		return n, nil
	case reflect.String:
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v.String()}
		if strings.Contains(n.Value, "\n") {
			n.Style = yaml.DoubleQuotedStyle
		}
		return n, nil
	case reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v.Bool())}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(v.Uint(), 10)}, nil
	case reflect.Float32, reflect.Float64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(v.Float(), 'g', -1, 64)}, nil
	}
	return nil, fmt.Errorf("cannot render a %s", v.Type())
}

// structNodes appends v's fields to the mapping n.
func structNodes(n *yaml.Node, v reflect.Value) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		if strings.Contains(opts, "inline") {
			if err := structNodes(n, fv); err != nil {
				return err
			}
			continue
		}
		if strings.Contains(opts, "omitempty") && fv.IsZero() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		vn, err := nodeOf(fv)
		if err != nil {
			return err
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, vn)
	}
	return nil
}
