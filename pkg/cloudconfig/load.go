package cloudconfig

import (
	"fmt"
	"reflect"

	"gopkg.in/yaml.v3"
)

// Result is the effective config of a set of sources.
type Result struct {
	Config Config
	// Scripts are user-data sources that were scripts (`#!…`).
	Scripts []Script
	// Diagnostics holds every warning and error, sorted by position.
	Diagnostics Diagnostics
	// Origins maps each top-level key, and each key of the keso block
	// ("keso.network"), to the source position that set it.
	Origins map[string]string

	tree   *yaml.Node
	values map[string]*yaml.Node
	origin *origins
}

// Load parses every source, merges them in order (later wins; maps merge key
// by key; a later list replaces an earlier one), decodes the result and
// validates it. It never fails as a whole: what is invalid is reported and
// left at its default, and everything else is in Config.
//
// The documented order of sources is: image defaults, /keso/config.yaml on
// the state partition, config.d/*.yaml in lexical order, datasource
// user-data, and last the kernel command line.
func Load(sources ...Source) Result {
	o := newOrigins()
	var (
		diags   Diagnostics
		merged  *yaml.Node
		scripts []Script
	)
	for _, src := range sources {
		var (
			root *yaml.Node
			ds   Diagnostics
		)
		if src.Cmdline {
			root, ds = cmdlineNode(src.Name, string(src.Data), o)
		} else {
			var p parsed
			p, ds = parseSource(src, o)
			if p.script != nil {
				scripts = append(scripts, *p.script)
			}
			root = p.root
		}
		diags = append(diags, ds...)
		if root == nil {
			continue
		}
		if merged == nil {
			merged = root
		} else {
			merged = mergeNodes(merged, root, o)
		}
	}
	r := Result{Scripts: scripts, Origins: map[string]string{}, origin: o, tree: merged}
	if merged != nil {
		d := newDecoder(o)
		d.decode(merged, reflect.ValueOf(&r.Config).Elem(), "")
		diags = append(diags, d.diags...)
		r.values = d.values
		diags = append(diags, validate(&r.Config, d)...)
		r.recordOrigins(merged)
	}
	diags.Sort()
	r.Diagnostics = diags
	return r
}

// LoadFile is Load for one named document.
func LoadFile(name string, data []byte) Result {
	return Load(Source{Name: name, Data: data})
}

func (r *Result) recordOrigins(root *yaml.Node) {
	if root.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		r.Origins[k.Value] = r.where(v)
		if k.Value == "keso" && v.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(v.Content); j += 2 {
				r.Origins["keso."+v.Content[j].Value] = r.where(v.Content[j+1])
			}
		}
	}
}

func (r *Result) where(n *yaml.Node) string {
	file, line, _ := r.origin.position(n)
	if line == 0 {
		return file
	}
	return fmt.Sprintf("%s:%d", file, line)
}

// Valid reports whether there are no errors.
func (r Result) Valid() bool { return len(r.Diagnostics.Errors()) == 0 }

// Position returns the source position of the value at a config path (as
// used in Diagnostic.Path), so that the phases that apply the config can
// report failures against the line that asked for them.
func (r Result) Position(path string) (file string, line, col int, ok bool) {
	n, found := r.values[path]
	if !found {
		return "", 0, 0, false
	}
	file, line, col = r.origin.position(n)
	return file, line, col, true
}
