package datasource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"gopkg.in/yaml.v3"
)

// Volume labels of the volume-based datasources.
const (
	NoCloudLabel     = "cidata"
	ConfigDriveLabel = "config-2"
)

// NoCloud is the `cdrom` datasource: a volume labelled cidata (CD or USB,
// ISO 9660 or FAT, as `cloud-localds` makes it) holding `user-data` and
// `meta-data`.
type NoCloud struct {
	Devices Devices
}

// Fetch finds the cidata volume and reads its two files.
func (n NoCloud) Fetch(ctx context.Context) (Found, error) {
	v, _, err := n.Devices.Find(NoCloudLabel)
	if err != nil {
		return Found{}, err
	}
	defer v.Close()
	return readNoCloud(v, "cidata:"+v.Device)
}

// volumeReader is what the volume datasources read through (a *Volume).
type volumeReader interface {
	ReadFile(name string) ([]byte, error)
}

func readNoCloud(v volumeReader, origin string) (Found, error) {
	found := Found{Origin: origin}
	var errs []error
	ud, err := v.ReadFile("user-data")
	switch {
	case err == nil:
		found.UserData, found.UserDataName = ud, origin+":user-data"
	case !errors.Is(err, fs.ErrNotExist):
		errs = append(errs, err)
	}
	md, err := v.ReadFile("meta-data")
	switch {
	case err == nil:
		meta, err := ParseNoCloudMeta(md)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:meta-data: %w", origin, err))
		}
		found.Meta, found.MetaName = meta, origin+":meta-data"
	case !errors.Is(err, fs.ErrNotExist):
		errs = append(errs, err)
	}
	return found, errors.Join(errs...)
}

// ParseNoCloudMeta parses a NoCloud meta-data file: YAML (or JSON) with
// instance-id, local-hostname (or hostname) and public-keys. public-keys may
// be a string, a list, or a map of name to key or to a list of keys, as
// cloud-init accepts. Unknown keys (network-interfaces, …) are ignored.
func ParseNoCloudMeta(data []byte) (Meta, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return Meta{}, fmt.Errorf("meta-data is not YAML: %w", err)
	}
	m := Meta{
		InstanceID: scalar(raw["instance-id"]),
		Hostname:   scalar(raw["local-hostname"]),
	}
	if m.Hostname == "" {
		m.Hostname = scalar(raw["hostname"])
	}
	keys := raw["public-keys"]
	if keys == nil {
		keys = raw["public_keys"]
	}
	m.PublicKeys = cleanKeys(flattenKeys(keys))
	return m, nil
}

// scalar renders a YAML scalar as a string ("" for anything else).
func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return strings.TrimSpace(x)
	case int, int64, uint64, float64, bool:
		return fmt.Sprint(x)
	}
	return ""
}

// flattenKeys turns the shapes public-keys may take into a list.
func flattenKeys(v any) []string {
	switch x := v.(type) {
	case string:
		return strings.Split(x, "\n")
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, flattenKeys(e)...)
		}
		return out
	case map[string]any:
		m := map[string]string{}
		var out []string
		for k, e := range x {
			m[k] = strings.Join(flattenKeys(e), "\n")
		}
		for _, s := range sortedValues(m) {
			out = append(out, strings.Split(s, "\n")...)
		}
		return out
	}
	return nil
}

// ConfigDrive is the `configdrive` datasource: an OpenStack config drive,
// a volume labelled config-2 with openstack/latest/user_data and
// openstack/latest/meta_data.json.
type ConfigDrive struct {
	Devices Devices
}

// Fetch finds the config-2 volume and reads user_data and meta_data.json.
func (c ConfigDrive) Fetch(ctx context.Context) (Found, error) {
	v, _, err := c.Devices.Find(ConfigDriveLabel)
	if err != nil {
		return Found{}, err
	}
	defer v.Close()
	return readConfigDrive(v, "config-2:"+v.Device)
}

func readConfigDrive(v volumeReader, origin string) (Found, error) {
	found := Found{Origin: origin}
	var errs []error
	ud, err := v.ReadFile("openstack/latest/user_data")
	switch {
	case err == nil:
		found.UserData, found.UserDataName = ud, origin+":openstack/latest/user_data"
	case !errors.Is(err, fs.ErrNotExist):
		errs = append(errs, err)
	}
	md, err := v.ReadFile("openstack/latest/meta_data.json")
	switch {
	case err == nil:
		meta, err := ParseOpenStackMeta(md)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:openstack/latest/meta_data.json: %w", origin, err))
		}
		found.Meta, found.MetaName = meta, origin+":openstack/latest/meta_data.json"
	case !errors.Is(err, fs.ErrNotExist):
		errs = append(errs, err)
	}
	return found, errors.Join(errs...)
}

// openStackMeta is the part of OpenStack's meta_data.json keso reads.
type openStackMeta struct {
	UUID       string            `json:"uuid"`
	Hostname   string            `json:"hostname"`
	Name       string            `json:"name"`
	PublicKeys map[string]string `json:"public_keys"`
	Keys       []struct {
		Name string `json:"name"`
		Type string `json:"type"`
		Data string `json:"data"`
	} `json:"keys"`
}

// ParseOpenStackMeta parses OpenStack's meta_data.json (config drive or
// metadata service): uuid is the instance id, hostname the host name
// (Nova's is a FQDN such as "vm-1.novalocal"; its first label is taken, as
// cloud-init does), public_keys (name → key, taken in name
// order) plus any ssh entries of keys[] not already listed.
func ParseOpenStackMeta(data []byte) (Meta, error) {
	var raw openStackMeta
	if err := json.Unmarshal(data, &raw); err != nil {
		return Meta{}, fmt.Errorf("meta_data.json: %w", err)
	}
	m := Meta{InstanceID: raw.UUID, Hostname: shortHostname(raw.Hostname)}
	if m.Hostname == "" {
		m.Hostname = shortHostname(raw.Name)
	}
	keys := sortedValues(raw.PublicKeys)
	for _, k := range raw.Keys {
		if k.Type == "" || k.Type == "ssh" {
			keys = append(keys, k.Data)
		}
	}
	m.PublicKeys = splitKeys(keys)
	return m, nil
}

// shortHostname returns the first label of a host name ("ip-10-0-0-7" for
// "ip-10-0-0-7.ec2.internal").
func shortHostname(h string) string {
	h = strings.TrimSpace(h)
	if i := strings.IndexByte(h, '.'); i > 0 {
		h = strings.TrimSpace(h[:i]) // "v .example" is "v"
	}
	return h
}
