package kmod

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Remover unloads a module by name; host.Linux implements it
// (delete_module).
type Remover interface {
	RemoveModule(name string) error
}

// modprobeUsage is printed for a command line Modprobe does not take.
const modprobeUsage = `usage: modprobe [-q] [-v] [-n] [-D] [--] MODULE [PARAM=VALUE ...]
       modprobe [-q] [-v] [-n] -a MODULE ...
       modprobe [-q] [-v] [-n] -r MODULE ...
keso's modprobe (keso-init under the name modprobe) loads a module or an
alias with its dependencies from /lib/modules/<release>/modules.dep and
modules.alias. It reads no /etc/modprobe.d: give module parameters on the
command line, in keso.modules, or on the kernel command line (name.param=value).`

// Modprobe is /sbin/modprobe: keso-init runs it when started under that
// name (the kernel starts `/sbin/modprobe -q -- NAME` to autoload a
// module). args are the arguments after the program name. It returns the
// exit status: 0 when every module is loaded (or built in), 1 otherwise.
//
// Options: -q/--quiet (no message for a name that is not found),
// -v/--verbose (print each insmod), -n/--dry-run, -D/--show-depends (print
// the insmod lines, load nothing), -a/--all (every argument is a module),
// -r/--remove (unload the named modules, not their dependencies),
// -b/--use-blacklist and -s/--syslog (accepted, no effect). Options that
// point at other module trees or configs (-C, -d, -S, --first-time, …) are
// refused with the usage.
func Modprobe(args []string, l *Loader, rm Remover, stdout, stderr io.Writer) int {
	var quiet, verbose, dry, show, all, remove bool
	var names []string
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "modprobe: "+format+"\n%s\n", append(a, modprobeUsage)...)
		return 1
	}
	i := 0
opts:
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			i++
			break opts
		case strings.HasPrefix(a, "--"):
			switch a {
			case "--quiet":
				quiet = true
			case "--verbose":
				verbose = true
			case "--dry-run":
				dry = true
			case "--show-depends":
				show = true
			case "--all":
				all = true
			case "--remove":
				remove = true
			case "--use-blacklist", "--syslog":
			default:
				return bad("option %s is not supported", a)
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for _, c := range a[1:] {
				switch c {
				case 'q':
					quiet = true
				case 'v':
					verbose = true
				case 'n':
					dry = true
				case 'D':
					show = true
				case 'a':
					all = true
				case 'r':
					remove = true
				case 'b', 's':
				default:
					return bad("option -%c is not supported", c)
				}
			}
		default:
			break opts
		}
	}
	names = args[i:]
	if len(names) == 0 {
		return bad("no module name given")
	}
	params := ""
	if !all && !remove {
		names, params = names[:1], strings.Join(names[1:], " ")
	}
	status := 0
	for _, n := range names {
		if remove {
			if dry || show {
				fmt.Fprintf(stdout, "rmmod %s\n", ModuleName(n))
				continue
			}
			if rm == nil {
				fmt.Fprintf(stderr, "modprobe: cannot remove %s: no remover (internal error)\n", n)
				status = 1
				continue
			}
			if verbose {
				fmt.Fprintf(stdout, "rmmod %s\n", ModuleName(n))
			}
			if err := rm.RemoveModule(ModuleName(n)); err != nil {
				fmt.Fprintf(stderr, "modprobe: remove %s: %v\n", n, err)
				status = 1
			}
			continue
		}
		st, err := l.Apply(n, params, dry || show)
		if err != nil {
			if !(quiet && errors.Is(err, ErrNotFound)) {
				fmt.Fprintf(stderr, "modprobe: %v\n", err)
			}
			status = 1
			continue
		}
		if show || verbose {
			for _, b := range st.Builtin {
				fmt.Fprintf(stdout, "builtin %s\n", b)
			}
			for _, ld := range st.Loads {
				fmt.Fprintln(stdout, strings.TrimSpace("insmod "+ld.File+" "+ld.Params))
			}
		}
	}
	return status
}
