package configtrial

import (
	"bytes"
	"fmt"

	"github.com/pmezard/go-difflib/difflib"
	"gopkg.in/yaml.v3"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/datasource"
)

// LocalChanges is the diff of the node's local config (local: image
// defaults, config.yaml, config.d, as datasource.Local reads them) with
// config.yaml as it is and replaced by next; a node without a config.yaml
// gets next right after the image defaults.
func LocalChanges(local []cloudconfig.Source, next []byte) (string, error) {
	// local is in merge order: defaults, config.yaml, config.d. next takes
	// config.yaml's place: after the defaults, before everything else.
	nextSrc := cloudconfig.Source{Name: ConfigPath, Data: next}
	after := make([]cloudconfig.Source, 0, len(local)+1)
	placed := false
	for _, s := range local {
		if s.Name == ConfigPath {
			continue
		}
		if !placed && s.Name != datasource.DefaultsPath {
			after, placed = append(after, nextSrc), true
		}
		after = append(after, s)
	}
	if !placed {
		after = append(after, nextSrc)
	}
	return Changes(cloudconfig.Load(local...).Config, cloudconfig.Load(after...).Config)
}

// Changes is what applying a config changes in the node's local config
// (image defaults, config.yaml, config.d; the datasources and the command
// line merge on top of it at boot, unchanged): a unified diff of the two
// effective configs in their canonical form, "" when they are the same.
func Changes(before, after cloudconfig.Config) (string, error) {
	b, err := canonical(before)
	if err != nil {
		return "", err
	}
	a, err := canonical(after)
	if err != nil {
		return "", err
	}
	if bytes.Equal(a, b) {
		return "", nil
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(b)), B: difflib.SplitLines(string(a)),
		FromFile: "current", ToFile: "new", Context: 2,
	})
}

func canonical(c cloudconfig.Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
