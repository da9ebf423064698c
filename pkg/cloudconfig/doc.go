// Package cloudconfig is keso's typed cloud-config: the schema (k3OS's,
// unchanged, plus keso's additions under `keso:`), a strict decoder that
// reports every problem with file:line:column, the merge of all config
// sources in their documented order, and value validation.
//
// It is pure: it reads bytes and returns values and diagnostics. Fetching
// config from disks, CD-ROMs or the network is pkg/datasource's job, and
// applying it is the job of the boot agent's phases.
//
// The pipeline is:
//
//	Parse (one source → YAML tree, k3os: folded into keso:)
//	  → Merge (later sources win; maps merge key by key; lists replace)
//	  → Decode (YAML tree → Config, unknown keys are warnings)
//	  → Validate (values: CIDRs, paths, modes, names…)
//
// Load runs all four and returns the Config with the warnings and errors
// kept apart.
package cloudconfig
