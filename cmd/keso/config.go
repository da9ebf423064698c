package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/keso-os/keso/pkg/cloudconfig"
)

func init() {
	register("config", "validate, show or apply cloud-config files (keso config validate|show|apply|confirm)", runConfig)
}

func runConfig(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: keso config validate [--strict] FILE...\n       keso config show [--cmdline STRING] FILE...\n       keso config apply [--try DURATION] [--auto-confirm=false] [--dry-run] [--no-reboot] FILE\n       keso config confirm")
		return 2
	}
	switch args[0] {
	case "validate":
		return configValidate(args[1:], os.Stdout)
	case "show":
		return configShow(args[1:], os.Stdout)
	case "apply":
		return configApply(args[1:], os.Stdout)
	case "confirm":
		return configConfirm(os.Stdout)
	}
	fmt.Fprintf(os.Stderr, "keso config: unknown subcommand %q (want validate, show, apply or confirm)\n", args[0])
	return 2
}

// configValidate checks each file on its own. Exit 0 when no file has an
// error, 1 otherwise; warnings do not change the exit code unless --strict.
func configValidate(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("keso config validate", flag.ContinueOnError)
	strict := fs.Bool("strict", false, "treat warnings as errors")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "keso config validate: name at least one file")
		return 2
	}
	code := 0
	for _, name := range fs.Args() {
		data, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(out, "%s: error: %v\n", name, err)
			code = 1
			continue
		}
		r := cloudconfig.LoadFile(name, data)
		for _, d := range r.Diagnostics {
			fmt.Fprintln(out, d)
			if d.Severity == cloudconfig.Error || *strict {
				code = 1
			}
		}
	}
	return code
}

// configShow merges the files in order (then the command line) and prints
// the effective config.
func configShow(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("keso config show", flag.ContinueOnError)
	cmdline := fs.String("cmdline", "", "a kernel command line to merge last (keso.* and k3os.* keys)")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	var sources []cloudconfig.Source
	for _, name := range fs.Args() {
		data, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: error: %v\n", name, err)
			return 1
		}
		sources = append(sources, cloudconfig.Source{Name: name, Data: data})
	}
	if *cmdline != "" {
		sources = append(sources, cloudconfig.Source{Name: "cmdline", Data: []byte(*cmdline), Cmdline: true})
	}
	r := cloudconfig.Load(sources...)
	for _, d := range r.Diagnostics {
		fmt.Fprintln(os.Stderr, d)
	}
	y, err := r.YAML()
	if err != nil {
		fmt.Fprintf(os.Stderr, "keso config show: %v\n", err)
		return 1
	}
	out.Write(y)
	if !r.Valid() {
		return 1
	}
	return 0
}
