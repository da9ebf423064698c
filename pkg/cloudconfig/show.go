package cloudconfig

import (
	"bytes"
	"fmt"

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
		return nil, fmt.Errorf("encode effective config: %w", err)
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
