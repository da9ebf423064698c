package datasource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/keso-os/keso/pkg/bootloader"
	"github.com/keso-os/keso/pkg/cloudconfig"
)

// The boot partition: on a Raspberry Pi SD card (pkg/image/sdcard) the FAT
// partition labelled KESO_BOOT is the one a user can edit on any computer
// after flashing the card. Config placed there is read on every boot,
// without mounting, like a cidata volume:
//
//	config.yaml   a keso (or k3OS) config file
//	user-data     NoCloud user-data (cloud-config or a script)
//	meta-data     NoCloud meta-data (instance-id, local-hostname, public-keys)
//
// It is a local source, like the state partition: it is always read (it
// needs no data_sources entry), before data_sources and config_url are
// decided (so it may set them), and it merges after the state partition's
// config and before the datasources:
//
//	image defaults < state config.yaml < config.d < boot partition
//	(meta-data < user-data < config.yaml) < datasources < kernel command line

// BootLabel is the FAT volume label of the boot partition.
const BootLabel = bootloader.LabelBoot

// Files read from the boot partition.
const (
	BootConfigFile = "config.yaml"
)

// bootFound is what the boot partition held; Found carries one user-data,
// so config.yaml travels beside it.
type bootFound struct {
	Found
	Config     []byte
	ConfigName string
}

func readBootFiles(v volumeReader, origin string) (bootFound, error) {
	nc, err := readNoCloud(v, origin)
	bf := bootFound{Found: nc}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	cfg, cerr := v.ReadFile(BootConfigFile)
	switch {
	case cerr == nil:
		bf.Config, bf.ConfigName = cfg, origin+":"+BootConfigFile
	case !errors.Is(cerr, fs.ErrNotExist):
		errs = append(errs, cerr)
	}
	if bf.UserData == nil && bf.MetaName == "" && bf.Config == nil && len(errs) == 0 {
		return bootFound{}, fmt.Errorf("volume %s on %s holds no %s, user-data or meta-data: %w", BootLabel, origin, BootConfigFile, ErrNotFound)
	}
	return bf, errors.Join(errs...)
}

// bootSources reads the boot partition (when d is set: Fetchers.Boot) and
// returns its sources in merge order, what was found, and a failure to
// report. Nothing found is not a failure.
func bootSources(ctx context.Context, d *Devices) ([]cloudconfig.Source, *bootFound, error) {
	if d == nil {
		return nil, nil, nil
	}
	v, _, err := d.Find(BootLabel)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("boot partition: %w", err)
	}
	defer v.Close()
	bf, err := readBootFiles(v, "boot:"+v.Device)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil
	}
	var srcs []cloudconfig.Source
	if mc := bf.Meta.Config(); mc != nil {
		srcs = append(srcs, cloudconfig.Source{Name: bf.MetaName, Data: mc})
	}
	if bf.UserData != nil {
		srcs = append(srcs, cloudconfig.Source{Name: bf.UserDataName, Data: bf.UserData})
	}
	if bf.Config != nil {
		srcs = append(srcs, cloudconfig.Source{Name: bf.ConfigName, Data: bf.Config})
	}
	if err != nil {
		err = fmt.Errorf("boot partition: %w", err)
	}
	return srcs, &bf, err
}

// describeBoot is the detail of the boot partition's "found" line.
func describeBoot(b *bootFound) string {
	d := describeFound(b.Found)
	if b.Config != nil {
		d = fmt.Sprintf("%s %d bytes, %s", BootConfigFile, len(b.Config), d)
	}
	return d
}
