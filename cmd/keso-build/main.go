// Command keso-build writes keso's bootable artifacts for one or more image
// profiles (docs/build.md), makes release signing keys (keso-build keygen),
// serves them to a rack (keso-build netboot, docs/netboot.md) and writes
// upgrade deltas between releases (keso-build delta, delta-size). main
// only dispatches: each subcommand lives in its own file of this package.
package main

import "os"

func main() { os.Exit(run(os.Args[1:])) }

// run dispatches to a subcommand and returns the exit code.
func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "keygen":
			return keygen(args[1:])
		case "netboot":
			return netboot(args[1:])
		case "delta":
			return deltaCmd(args[1:], false)
		case "delta-size":
			return deltaCmd(args[1:], true)
		}
	}
	return buildImages(args)
}
