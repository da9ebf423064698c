// Package version holds the keso version string, set at build time with
// -ldflags "-X github.com/keso-os/keso/pkg/version.Version=<v>".
package version

// Version is the keso release this binary belongs to ("dev" in untagged builds).
var Version = "dev"
