package kmod

import (
	"strings"
	"testing"
)

func tree() *Tree {
	return &Tree{
		Dir: "/lib/modules/test",
		Path: map[string]string{
			"a": "kernel/a.ko", "b": "kernel/b.ko", "c": "kernel/c.ko", "d": "kernel/sub/d.ko", "nls_iso8859_1": "kernel/nls_iso8859-1.ko",
		},
		Deps:    map[string][]string{"a": {"b", "c"}, "b": {"c"}, "c": nil, "d": {"a", "ext4"}},
		Builtin: map[string]bool{"ext4": true},
	}
}

func TestResolveOrderAndBuiltins(t *testing.T) {
	tr := tree()
	s, err := tr.Resolve([]string{"d", "ext4", "nls_iso8859-1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(s.Order, " "), "c b a d nls_iso8859_1"; got != want {
		t.Errorf("load order = %q, want %q", got, want)
	}
	if got, want := strings.Join(s.Builtin, " "), "ext4"; got != want {
		t.Errorf("builtin = %q, want %q", got, want)
	}
	dep := string(tr.ModulesDep(s))
	for _, want := range []string{
		"kernel/a.ko: kernel/b.ko kernel/c.ko\n", // load from the end: c, then b, then a
		"kernel/sub/d.ko: kernel/a.ko kernel/b.ko kernel/c.ko\n",
		"kernel/c.ko:\n",
	} {
		if !strings.Contains(dep, want) {
			t.Errorf("modules.dep lacks %q:\n%s", want, dep)
		}
	}
}

func TestResolveMissing(t *testing.T) {
	_, err := tree().Resolve([]string{"a", "e1000"})
	if err == nil || !strings.Contains(err.Error(), "e1000") {
		t.Fatalf("err = %v, want one naming e1000", err)
	}
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{"nls_iso8859-1": "nls_iso8859_1", "kernel/x/virtio-blk.ko": "virtio_blk", "loop": "loop"} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

// testdata holds ELF objects with a .modinfo section like real modules'
// (made with objcopy --add-section .modinfo=…): veth, and xt_MASQUERADE
// needing nf_nat and nf_conntrack.
func TestOpenAliases(t *testing.T) {
	tr, err := Open("testdata/lib/modules/6.1.0-test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := tr.Resolve([]string{"veth", "xt_MASQUERADE"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(s.Order, " "), "veth nf_conntrack nf_nat xt_MASQUERADE"; got != want {
		t.Errorf("order = %q, want %q", got, want)
	}
	got := string(tr.ModulesAlias(s))
	want := "# Aliases extracted from modules themselves.\n" +
		"alias nf_conntrack-10 nf_conntrack\n" +
		"alias rtnl-link-veth veth\n" +
		"alias ipt_MASQUERADE xt_MASQUERADE\n" +
		"alias ip6t_MASQUERADE xt_MASQUERADE\n"
	if got != want {
		t.Errorf("modules.alias:\n%s\nwant:\n%s", got, want)
	}
	// Only the shipped set: nf_nat alone has no aliases, veth is not in it.
	s, _ = tr.Resolve([]string{"nf_nat"})
	if got := string(tr.ModulesAlias(s)); strings.Contains(got, "veth") || strings.Contains(got, "MASQUERADE") {
		t.Errorf("modules.alias for nf_nat lists modules outside the set:\n%s", got)
	}
}
