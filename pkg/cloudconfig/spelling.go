package cloudconfig

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// k3OS reads its config through a name mapper that is forgiving, and its
// users' files rely on it (docs/config.md, "Coming from k3OS"): every
// field also answers to its singular or plural (a trailing "s" or "es"
// dropped or added), to camelCase, snake_case and the all-lowercase
// run-together form. keso accepts the same spellings at every level,
// under k3os: and keso:, and rewrites each key to the schema's name before
// sources are merged, so a later file's dataSources replaces an earlier
// file's data_sources. Case and underscores are folded (normKey), which
// also covers the k3OS forms; a key that matches no field in any spelling
// is still an unknown key.

// normKey folds a key for comparing spellings: lower case, no underscores
// (dataSources, data_sources and datasources are one key).
func normKey(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "_", ""))
}

// extraSpellings are the names k3OS accepts that no rule derives.
var extraSpellings = map[reflect.Type]map[string]string{
	reflect.TypeFor[Wifi]():    {"pass": "passphrase", "password": "passphrase"},
	reflect.TypeFor[Install](): {"efi": "force_efi"}, // k3os.install.efi, as k3OS's README writes it
}

// spellings maps every accepted spelling of a struct's keys (normKey'd)
// to the key's schema name. The schema names themselves come first; a
// singular or plural form never takes another field's name.
func spellings(t reflect.Type, names []string) map[string]string {
	m := map[string]string{}
	for _, n := range names {
		m[normKey(n)] = n
	}
	for _, n := range names {
		forms := []string{n + "s", n + "es"}
		if strings.HasSuffix(n, "s") {
			forms = append(forms, n[:len(n)-1])
		}
		if strings.HasSuffix(n, "es") {
			forms = append(forms, n[:len(n)-2])
		}
		for _, f := range forms {
			if k := normKey(f); len(k) > 2 {
				if _, taken := m[k]; !taken {
					m[k] = n
				}
			}
		}
	}
	for from, to := range extraSpellings[t] {
		if _, taken := m[normKey(from)]; !taken {
			m[normKey(from)] = to
		}
	}
	return m
}

// canonical returns the schema name of key in a struct of this fieldSet,
// in any spelling k3OS accepts.
func (fs fieldSet) canonical(key string) (string, bool) {
	if _, ok := fs.index[key]; ok {
		return key, true
	}
	n, ok := fs.spell[normKey(key)]
	return n, ok
}

// canonicalize rewrites, in the tree of one source, every mapping key that
// names a field of t in another spelling to the field's schema name, and
// records for each key node the path as the user wrote it (k3os.dataSources)
// for messages. The block k3os: is walked as keso:. Values are not touched;
// keys of maps (labels, sysctl, …) are data and keep their spelling.
func canonicalize(root *yaml.Node, o *origins) {
	c := canonicalizer{o: o, seen: map[*yaml.Node]bool{}}
	c.walk(root, reflect.TypeFor[Config](), "")
}

type canonicalizer struct {
	o       *origins
	seen    map[*yaml.Node]bool // aliases share nodes: each is walked once
	visited int
}

func (c *canonicalizer) walk(n *yaml.Node, t reflect.Type, shown string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	c.visited++
	if c.seen[n] || c.visited > maxNodes {
		return
	}
	c.seen[n] = true
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == commandType:
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fs := structFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				continue
			}
			written := joinPath(shown, k.Value)
			c.o.written[k] = written
			if t == reflect.TypeFor[Config]() && k.Value == "k3os" {
				c.walk(v, reflect.TypeFor[System](), written)
				continue
			}
			name, ok := fs.canonical(k.Value)
			if !ok {
				continue
			}
			k.Value = name
			c.walk(v, t.FieldByIndex(fs.index[name]).Type, written)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			c.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", shown, i))
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.walk(n.Content[i+1], t.Elem(), shown+"."+n.Content[i].Value)
		}
	}
}
