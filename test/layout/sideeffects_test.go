// Package layout holds tests of the code's structure: the rules
// docs/architecture.md states, checked against the code so the two cannot
// drift apart.
package layout

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// sideEffects are the calls that change the machine: system calls,
// processes, and writes to the file system by path (os.OpenFile too, when
// it opens for writing).
var sideEffects = map[string]map[string]bool{
	"syscall":               nil, // every function but the pure ones below
	"golang.org/x/sys/unix": nil,
	"os/exec":               {"Command": true, "CommandContext": true},
	"os": {"WriteFile": true, "Remove": true, "RemoveAll": true, "MkdirAll": true, "Mkdir": true, "Rename": true,
		"Chmod": true, "Chown": true, "Lchown": true, "Symlink": true, "Link": true, "Create": true, "Truncate": true},
}

// pure are syscall/unix functions and conversions that touch nothing.
var pure = map[string]bool{"Major": true, "Minor": true, "Mkdev": true, "ByteSliceToString": true,
	"Signal": true, "Errno": true, "NsecToTimespec": true, "TimespecToNsec": true, "NsecToTimeval": true}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// allowed reads the packages docs/architecture.md names under "## Where
// side effects live": every backquoted pkg/… or cmd/… path there, and
// which of them are the builder's (run on the build host).
func allowed(t *testing.T, root string) (out, builder []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "## Where side effects live")
	if i < 0 {
		t.Fatal(`docs/architecture.md has no "## Where side effects live" section`)
	}
	doc = doc[i+1:]
	if j := strings.Index(doc, "\n## "); j >= 0 {
		doc = doc[:j]
	}
	path := regexp.MustCompile("`((?:pkg|cmd)/[a-z0-9/_-]+)`")
	for _, item := range strings.Split(doc, "\n- ") {
		for _, m := range path.FindAllStringSubmatch(item, -1) {
			out = append(out, strings.TrimSuffix(m[1], "/"))
			if strings.HasPrefix(item, "the builder") {
				builder = append(builder, strings.TrimSuffix(m[1], "/"))
			}
		}
	}
	if len(out) < 5 {
		t.Fatalf("docs/architecture.md names %d packages with side effects; the section is malformed", len(out))
	}
	return out, builder
}

// writes reports whether an os.OpenFile call opens for writing.
func writes(call *ast.CallExpr) bool {
	if len(call.Args) < 2 {
		return false
	}
	w := false
	ast.Inspect(call.Args[1], func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			switch sel.Sel.Name {
			case "O_RDWR", "O_WRONLY", "O_CREATE", "O_TRUNC", "O_APPEND":
				w = true
			}
		}
		return true
	})
	return w
}

func inAllowed(dir string, allow []string) bool {
	for _, a := range allow {
		if dir == a || strings.HasPrefix(dir, a+"/") {
			return true
		}
	}
	return false
}

// TestSideEffectsStayInTheirPackages: no system call, process or write by
// path outside the facility packages and the appliers that
// docs/architecture.md names.
func TestSideEffectsStayInTheirPackages(t *testing.T) {
	root := repoRoot(t)
	allow, builder := allowed(t, root)
	var bad []string
	withEffects := map[string]bool{} // allowed packages that have side effects
	docs := map[string]string{}      // package dir → its doc comment
	fset := token.NewFileSet()
	for _, top := range []string{"pkg", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || d.Name() == "generated") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			dir := filepath.ToSlash(filepath.Dir(rel))
			allowedHere := inAllowed(dir, allow)
			f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution|parser.ParseComments)
			if err != nil {
				return err
			}
			if f.Doc != nil {
				docs[dir] += f.Doc.Text()
			}
			names := map[string]string{} // local name → import path
			for _, im := range f.Imports {
				path, _ := strconv.Unquote(im.Path.Value)
				if _, ok := sideEffects[path]; !ok {
					continue
				}
				name := path[strings.LastIndex(path, "/")+1:]
				if im.Name != nil {
					name = im.Name.Name
				}
				names[name] = path
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				x, ok := sel.X.(*ast.Ident)
				if !ok {
					return true
				}
				path, ok := names[x.Name]
				if !ok {
					return true
				}
				fns := sideEffects[path]
				if (fns == nil && !pure[sel.Sel.Name]) || fns[sel.Sel.Name] || (path == "os" && sel.Sel.Name == "OpenFile" && writes(call)) {
					if allowedHere {
						withEffects[dir] = true
					} else {
						bad = append(bad, fset.Position(call.Pos()).String()[len(root)+1:]+": "+x.Name+"."+sel.Sel.Name)
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Errorf("%s: a side effect outside the packages docs/architecture.md names (\"Where side effects live\"): move it into a facility, or name the package there if it is one", b)
	}
	// A node package that may have side effects says which in its doc.
	var dirs []string
	for d := range withEffects {
		if !inAllowed(d, builder) {
			dirs = append(dirs, d)
		}
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		if !strings.Contains(strings.ToLower(docs[d]), "side effect") {
			t.Errorf("%s has side effects, and its package doc does not name them (say \"Side effects: …\")", d)
		}
	}
}
