package datasource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// OpenStackSource is the `openstack` datasource: the config drive when
// there is one, else the OpenStack metadata service
// (BaseURL/openstack/latest/meta_data.json and user_data).
type OpenStackSource struct {
	Drive   ConfigDrive
	BaseURL string // DefaultIMDS on a node
	Client  *http.Client
	Retry   Retry // default budget 30 s, 2 s per attempt
}

// Fetch tries the config drive, then the metadata service.
func (o OpenStackSource) Fetch(ctx context.Context) (Found, error) {
	found, err := o.Drive.Fetch(ctx)
	if !errors.Is(err, ErrNotFound) {
		return found, err
	}
	base, c, r := metadataService(o.BaseURL, o.Client, o.Retry)
	metaURL := base + "/openstack/latest/meta_data.json"
	md, _, err := get(ctx, c, r, metaURL, nil)
	if err != nil {
		if isStatus(err) {
			return Found{}, fmt.Errorf("no config drive, and no OpenStack metadata at %s: %v: %w", base, err, ErrNotFound)
		}
		return Found{}, fmt.Errorf("no config drive, and no OpenStack metadata service at %s: %v: %w", base, err, ErrNotFound)
	}
	found = Found{Origin: "openstack:" + base}
	var errs []error
	meta, err := ParseOpenStackMeta(md)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", metaURL, err))
	}
	found.Meta, found.MetaName = meta, metaURL
	udURL := base + "/openstack/latest/user_data"
	ud, err := getOptional(ctx, c, r, udURL, nil)
	if err != nil {
		errs = append(errs, err)
	} else if ud != nil {
		found.UserData, found.UserDataName = ud, udURL
	}
	return found, errors.Join(errs...)
}

// NoCloudSeed is NoCloud's network form, `ds=nocloud;s=URL/` on the kernel
// command line: URL/user-data and URL/meta-data.
type NoCloudSeed struct {
	Seed   string // ends with "/"
	Client *http.Client
	Retry  Retry
}

// Fetch GETs user-data and meta-data under the seed URL. A 404 for either
// means that file is absent.
func (n NoCloudSeed) Fetch(ctx context.Context) (Found, error) {
	c := n.Client
	if c == nil {
		c = http.DefaultClient
	}
	seed := Redact(n.Seed)
	found := Found{Origin: "nocloud:" + seed}
	var errs []error
	ud, err := getOptional(ctx, c, n.Retry, n.Seed+"user-data", nil)
	if err != nil {
		return Found{}, err
	}
	if ud != nil {
		found.UserData, found.UserDataName = ud, seed+"user-data"
	}
	md, err := getOptional(ctx, c, n.Retry, n.Seed+"meta-data", nil)
	if err != nil {
		errs = append(errs, err)
	} else if md != nil {
		meta, err := ParseNoCloudMeta(md)
		if err != nil {
			errs = append(errs, fmt.Errorf("%smeta-data: %w", seed, err))
		}
		found.Meta, found.MetaName = meta, seed+"meta-data"
	}
	return found, errors.Join(errs...)
}

// NodeFetchers returns the real datasources of a node whose root file
// system is at root ("/" on a device; block devices are read from
// root/sys/class/block and root/dev). Network sources use Go's default
// HTTP client, which verifies HTTPS against the system roots.
func NodeFetchers(root string) Fetchers {
	dev := Devices{Root: root}
	return Fetchers{
		ByName: map[string]Fetcher{
			CDROM:            NoCloud{Devices: dev},
			ConfigDrv:        ConfigDrive{Devices: dev},
			OpenStack:        OpenStackSource{Drive: ConfigDrive{Devices: dev}, BaseURL: DefaultIMDS},
			EC2Name:          EC2{BaseURL: DefaultIMDS},
			GCPName:          GCP{BaseURL: DefaultIMDS},
			HetznerName:      Hetzner{BaseURL: DefaultIMDS},
			DigitalOceanName: DigitalOcean{BaseURL: DefaultIMDS},
			VultrName:        Vultr{BaseURL: DefaultIMDS},
			ScalewayName:     Scaleway{Service: Service{BaseURL: DefaultScaleway}},
			PacketName:       Packet{BaseURL: DefaultPacket},
		},
		HTTP:       func(u string) Fetcher { return HTTP{URL: u} },
		NoCloudNet: func(s string) Fetcher { return NoCloudSeed{Seed: s} },
		Boot:       &dev,
	}
}

// InstallConfig reads the config that `keso install` saves as the installed
// system's /keso/config.yaml: install.config_url may be an http(s) URL
// (fetched like keso.config_url, with retries), a file:// URL or an
// absolute path in the running system (read through files). It returns the
// bytes and the name to report them under.
func InstallConfig(ctx context.Context, files Files, location string, client *http.Client, r Retry) ([]byte, string, error) {
	switch {
	case strings.HasPrefix(location, "http://"), strings.HasPrefix(location, "https://"):
		f, err := HTTP{URL: location, Client: client, Retry: r}.Fetch(ctx)
		if err != nil {
			return nil, Redact(location), fmt.Errorf("install.config_url: %w", err)
		}
		return f.UserData, f.UserDataName, nil
	case strings.HasPrefix(location, "file://"), strings.HasPrefix(location, "/"):
		p := strings.TrimPrefix(location, "file://")
		b, err := files.ReadFile(p)
		if err != nil {
			return nil, p, fmt.Errorf("install.config_url: %w", err)
		}
		return b, p, nil
	}
	return nil, location, fmt.Errorf("install.config_url %q: want an http(s):// or file:// URL or an absolute path", location)
}
