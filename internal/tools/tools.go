//go:build tools

// Package tools pins the modules keso-build runs but does not import:
// u-root's commands and gobusybox's makebb, which pkg/image/gobuild builds
// into the node's multi-call userland. The build tag keeps it out of every
// build; go mod tidy still sees the imports and keeps the requirements.
package tools

import (
	_ "github.com/u-root/gobusybox/src/cmd/makebb"
	_ "github.com/u-root/u-root/cmds/core/ls"
)
