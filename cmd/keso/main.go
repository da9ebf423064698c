// Command keso is keso's node and cluster CLI: config validation, install,
// upgrade, status and the in-cluster operator. main only wires: each
// subcommand lives in its own file of this package and registers itself in
// the commands table; the logic lives in pkg/.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
)

// command is one `keso <name>` subcommand.
type command struct {
	summary string
	run     func(args []string) int // returns the exit code
}

// commands is filled by the init functions of the files in this package.
var commands = map[string]command{}

func register(name, summary string, run func(args []string) int) {
	commands[name] = command{summary: summary, run: run}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: keso <command> [arguments]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "keso: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	os.Exit(c.run(os.Args[2:]))
}

// usageExit is a command's exit status when its flags do not parse: 0 for
// -h/--help (the flag package has printed the usage, as asked), 2 for a
// wrong flag.
func usageExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
