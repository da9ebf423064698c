package operator

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// TestShippedManifestMatchesDefaults ties the Deployment and RBAC in
// overlay/ to the operator's defaults: the image tag, namespace and Lease.
func TestShippedManifestMatchesDefaults(t *testing.T) {
	b, err := os.ReadFile("../../overlay/usr/share/keso/manifests/keso-operator.yaml")
	if err != nil {
		t.Fatal(err)
	}
	opts := Flags(flag.NewFlagSet("x", flag.ContinueOnError))
	var dep *appsv1.Deployment
	leaseOK := false
	for _, doc := range bytes.Split(b, []byte("\n---\n")) {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("manifest document: %v", err)
		}
		switch meta.Kind {
		case "Deployment":
			dep = &appsv1.Deployment{}
			if err := yaml.UnmarshalStrict(doc, dep); err != nil {
				t.Fatal(err)
			}
		case "Role":
			var r rbacv1.Role
			if err := yaml.UnmarshalStrict(doc, &r); err != nil {
				t.Fatal(err)
			}
			for _, rule := range r.Rules {
				if len(rule.ResourceNames) == 1 && rule.ResourceNames[0] == opts.LeaseName && r.Namespace == opts.Namespace {
					leaseOK = true
				}
			}
		}
	}
	if dep == nil {
		t.Fatal("no Deployment in keso-operator.yaml")
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Image != DefaultImage() || dep.Namespace != opts.Namespace || c.ImagePullPolicy != "Never" {
		t.Errorf("Deployment image %s ns %s pull %s, want %s %s Never", c.Image, dep.Namespace, c.ImagePullPolicy, DefaultImage(), opts.Namespace)
	}
	if !leaseOK {
		t.Errorf("no Role in %s grants the Lease %q by name", opts.Namespace, opts.LeaseName)
	}
	if !strings.Contains(string(b), "pod-security.kubernetes.io/enforce: privileged") {
		t.Error("namespace does not allow the privileged upgrade Jobs")
	}
}
