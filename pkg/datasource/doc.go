// Package datasource finds a node's cloud-config: the image defaults, the
// state partition, the datasources named in data_sources, and the kernel
// command line, and returns them as cloudconfig.Sources in merge order.
//
// # Merge order (a later source wins)
//
//  1. image defaults: /usr/share/keso/config.yaml
//  2. the state partition's /keso/config.yaml (mounted by the initrd stage
//     at /keso/state, so /keso/state/keso/config.yaml)
//  3. /keso/state/keso/config.d/*.yaml (and *.yml), in lexical order
//  4. for each datasource that found something, in the order tried: a
//     document generated from its meta-data (hostname, ssh_authorized_keys),
//     then its user-data — so user-data that sets hostname wins over
//     meta-data's local-hostname
//  5. the kernel command line (keso.* / k3os.* keys)
//
// # Two steps
//
// data_sources and config_url are themselves config, so Collect first loads
// 1, 2, 3 and 5, reads data_sources and config_url from that, then queries
// the datasources, and returns everything for the final cloudconfig.Load.
// User-data cannot name more datasources (no recursion).
//
// # Which datasources, in which order
//
// With data_sources empty: cdrom (NoCloud cidata), then configdrive
// (OpenStack config-2), then a `ds=nocloud;s=URL/` seed from the kernel
// command line, then http when a config_url is given (kernel command line
// keso.config_url= or keso.config_url in a local file). The cloud
// metadata services (openstack's HTTP service, ec2/aws, gcp, hetzner,
// digitalocean, vultr, scaleway, packet/equinix: k3OS's list) are only
// queried when data_sources names them: on a store LAN a request to
// 169.254.169.254 would only wait for its timeout. Each speaks its
// provider's own protocol (imds.go, node.go, gcp.go, hetzner.go, …); those
// of gcp and after share metaservice.go: a probe (a value every instance
// has) that says whether the service is there, so that another cloud's
// service on the same address (a 404) or none at all is ErrNotFound; and
// all or nothing: a service whose user-data cannot be read gives an
// error, not its meta-data alone.
//
// The volume and metadata sources are tried in order and the first that
// finds something is used (k3OS did the same); http and the nocloud seed
// are fetched in addition. "state" is accepted and changes nothing, since
// the state partition is always read. All datasources together get a time
// budget (DefaultBudget); network sources retry with exponential backoff
// (0.5 s doubling to 8 s) inside it, so an unreachable config_url delays
// the boot by at most the budget and is then reported.
//
// # Volumes are read without mounting
//
// cidata and config-2 volumes (ISO 9660 or FAT12/16/32, on a CD or a USB
// stick, whole disk or partition) are found by label among the devices in
// /sys/class/block — ISO 9660's primary volume descriptor label at byte
// 32768+40, or FAT's volume label (root directory entry, else boot sector)
// — and then read in user space with go-diskfs. We chose that over
// mounting: there is no mount point to create and clean up, no
// isofs/vfat/nls_* module has to be in the image or loaded, a malformed
// volume is an error value (go-diskfs panics are recovered) rather than a
// kernel complaint, and the same code reads the seed image files in the
// unit tests that it reads from /dev/sr0 on a device. The device still needs
// its block driver (sr_mod+cdrom for a CD, usb-storage+sd_mod for a stick,
// virtio_blk/virtio_scsi in a VM).
//
// # Names in diagnostics
//
// Sources are named so that cloudconfig's messages say where a problem is:
// "cidata:/dev/sr1:user-data", "config-2:/dev/vdb:openstack/latest/user_data",
// "http://host/node.yaml" (with any password redacted),
// "http://169.254.169.254/hetzner/v1/userdata",
// "/keso/state/keso/config.yaml", "kernel command line".
package datasource
