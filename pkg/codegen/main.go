// Command codegen generates keso's Kubernetes API code with wrangler's
// controller-gen: deep copies and registration in pkg/apis/keso.io/v1, and
// clientset, listers, informers, wrangler controllers and the OpenAPI model
// in pkg/generated. Run it with `go generate ./pkg/codegen`; it works from the
// repository root whatever the current directory. A second step,
// pkg/codegen/crd, turns the generated OpenAPI model into the CRD manifest.
// A test (pkg/codegen/crd) checks that the committed output is up to date.
package main

//go:generate go run .
//go:generate go run ./crd

import (
	"fmt"
	"os"
	"path/filepath"

	controllergen "github.com/rancher/wrangler/v3/pkg/controller-gen"
	"github.com/rancher/wrangler/v3/pkg/controller-gen/args"
)

const module = "github.com/keso-os/keso"

func main() {
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "codegen:", err)
		os.Exit(1)
	}
	if err := os.Chdir(root); err != nil {
		fmt.Fprintln(os.Stderr, "codegen:", err)
		os.Exit(1)
	}
	// controller-gen regenerates into these folders; remove stale files first.
	for _, dir := range []string{"pkg/generated"} {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintln(os.Stderr, "codegen:", err)
			os.Exit(1)
		}
	}
	controllergen.Run(args.Options{
		OutputPackage: module + "/pkg/generated",
		ModulePath:    module,
		Boilerplate:   "pkg/codegen/boilerplate.go.txt",
		Groups: map[string]args.Group{
			"keso.io": {
				Types:             []interface{}{"./pkg/apis/keso.io/v1"},
				GenerateTypes:     true,
				GenerateClients:   true,
				GenerateListers:   true,
				GenerateInformers: true,
				GenerateOpenAPI:   true,
				OpenAPIDependencies: []string{
					"k8s.io/apimachinery/pkg/apis/meta/v1",
					"k8s.io/apimachinery/pkg/runtime",
					"k8s.io/apimachinery/pkg/version",
					"k8s.io/apimachinery/pkg/util/intstr",
				},
			},
		},
	})
}

// repoRoot walks up from the working directory to the folder holding the
// keso go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && len(b) > 0 &&
			string(b[:len("module "+module)]) == "module "+module {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find the keso repository root: no go.mod with module %s above the working directory", module)
		}
		dir = parent
	}
}
