package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keso-os/keso/test/e2e/qemu"
)

// goodConfig writes a marker file; badConfig moves the only NIC (QEMU's
// default MAC) from DHCP to a static address the forwarded SSH port never
// reaches. The NoCloud seed (ssh keys, root login) merges on top of both.
const (
	goodConfig = `#cloud-config
write_files:
  - path: /run/keso-trial
    content: "%s"
`
	badConfig = `#cloud-config
keso:
  network:
    interfaces:
      - mac: "52:54:00:12:34:56"
        addresses: [10.0.2.99/24]
        gateway: 10.0.2.2
`
)

// putFile writes content to p in the guest through cat.
func putFile(t testing.TB, c *ssh.Client, p, content string) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Stdin = strings.NewReader(content)
	if out, err := s.CombinedOutput("cat > " + p); err != nil {
		t.Fatalf("guest: write %s: %v\n%s", p, err, out)
	}
}

// TestConfigTrial is `keso config apply --try` on an installed node (#15):
// a good config confirmed by hand over SSH stays past its deadline; a
// config that cuts the node off its management address is not confirmed,
// and the node comes back on its old address and config by itself; a good
// config with auto-confirm is confirmed once the node is healthy.
func TestConfigTrial(t *testing.T) {
	skipUnlessE2E(t)
	t.Parallel()
	rel := variant(t, "amd64", Variant{Name: "v1", Version: "1.0.0", Signed: true})
	n := newNode(t, "cfgtrial", rel)
	vm := n.start("first")
	if _, _, err := vm.Expect(readyRE, bootTimeout); err != nil {
		t.Fatal(err)
	}
	c := n.ssh()
	stateConfig := "/keso/state/keso/config.yaml"
	before, _ := guestRun(c, "cat "+stateConfig)

	// apply runs `keso config apply` in the guest and waits for the reboot
	// it asks for (QEMU runs with -no-reboot: the VM ends).
	apply := func(label, args string) {
		t.Helper()
		out, code := guestRun(c, "keso config apply "+args)
		t.Logf("keso config apply %s: exit %d\n%s", args, code, out)
		if !strings.Contains(out, "the next boot tries") {
			t.Fatalf("keso config apply %s: no trial begun (exit %d):\n%s", args, code, out)
		}
		awaitExit(t, vm, 3*time.Minute, label+": keso config apply")
	}
	trialLine := func(file string) *regexp.Regexp {
		return regexp.MustCompile(`keso: config trial: running ` + regexp.QuoteMeta(file) + ` for 2m0s`)
	}

	// 1. A good config, confirmed by hand, stays.
	putFile(t, c, "/root/good.yaml", fmt.Sprintf(goodConfig, "good"))
	out, code := guestRun(c, "keso config apply --dry-run /root/good.yaml")
	if code != 0 || !strings.Contains(out, "+write_files:") {
		t.Errorf("keso config apply --dry-run: exit %d, want 0 and the new write_files in the diff:\n%s", code, out)
	}
	if now, _ := guestRun(c, "cat "+stateConfig); now != before {
		t.Errorf("--dry-run changed %s:\n%s", stateConfig, now)
	}
	apply("good", "--try 2m --auto-confirm=false /root/good.yaml")
	vm = n.start("good-trial")
	if _, _, err := vm.Expect(trialLine("/root/good.yaml"), bootTimeout); err != nil {
		t.Fatal(err)
	}
	if _, _, err := vm.Expect(readyRE, bootTimeout); err != nil {
		t.Fatal(err)
	}
	c = n.ssh()
	if got := run(t, c, "cat /run/keso-trial"); got != "good" {
		t.Errorf("trial boot: /run/keso-trial = %q, want the trial config's %q", got, "good")
	}
	st := n.status(c)
	if st.ConfigTrial == nil || st.ConfigTrial.State != "pending" {
		t.Fatalf("trial boot: status config_trial = %+v, want pending", st.ConfigTrial)
	}
	deadline := st.ConfigTrial.Deadline
	if out := run(t, c, "keso config confirm"); !strings.Contains(out, "/root/good.yaml stays") {
		t.Errorf("keso config confirm: %s", out)
	}
	if _, _, err := vm.Expect(regexp.MustCompile(`config trial: /root/good.yaml confirmed: it stays`), time.Minute); err != nil {
		t.Error(err)
	}
	// Past the deadline, the node has not rebooted and keeps the config.
	wait := time.Until(deadline) + 20*time.Second
	t.Logf("confirmed; waiting %s, past the trial's deadline", wait.Round(time.Second))
	select {
	case <-vm.Exited():
		t.Fatalf("the node rebooted after its trial was confirmed; console tail:\n%s", qemu.Tail(vm.Console(), 3000))
	case <-time.After(wait):
	}
	if out, _ := guestRun(c, "cat "+stateConfig); !strings.Contains(out, `content: "good"`) {
		t.Errorf("after the confirmed trial's deadline %s is:\n%s", stateConfig, out)
	}
	if out, code := guestRun(c, "keso config confirm"); code == 0 || !strings.Contains(out, "no config trial is pending") {
		t.Errorf("a second keso config confirm: exit %d: %s", code, out)
	}

	// 2. A config that cuts the node off: not confirmed (auto-confirm finds
	// the management address gone), the deadline reboots it, and the next
	// boot returns to the previous config on its old address.
	putFile(t, c, "/root/bad.yaml", badConfig)
	apply("bad", "--try 2m /root/bad.yaml")
	vm = n.start("bad-trial")
	if _, _, err := vm.Expect(trialLine("/root/bad.yaml"), bootTimeout); err != nil {
		t.Fatal(err)
	}
	if _, _, err := vm.Expect(readyRE, bootTimeout); err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(n.signer)}, Timeout: 15 * time.Second,
		HostKeyCallback: ssh.InsecureIgnoreHostKey()}
	if cc, err := ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", n.port), cfg); err == nil {
		cc.Close()
		t.Fatalf("the bad config's trial boot is still reachable over SSH on its old address")
	} else {
		t.Logf("the bad trial cut the node off, as meant: ssh: %v", err)
	}
	notConfirmed := regexp.MustCompile(`config trial: /root/bad.yaml not confirmed within 2m0s \(last health check: (.*)\): rebooting`)
	m, _, err := vm.Expect(notConfirmed, 4*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m[1], "management address 10.0.2.15") {
		t.Errorf("the bad trial failed for %q, want its management address 10.0.2.15 missing", m[1])
	}
	awaitExit(t, vm, 3*time.Minute, "the failed trial")
	vm = n.start("reverted")
	if _, _, err := vm.Expect(regexp.MustCompile(`config trial: the trial of /root/bad.yaml \(applied [^)]*\) was not confirmed within 2m0s: returned to the previous config`), bootTimeout); err != nil {
		t.Fatal(err)
	}
	if _, _, err := vm.Expect(readyRE, bootTimeout); err != nil {
		t.Fatal(err)
	}
	c = n.ssh()
	if st := n.status(c); st.ConfigTrial == nil || st.ConfigTrial.State != "reverted" {
		t.Errorf("after the revert: status config_trial = %+v, want reverted", st.ConfigTrial)
	}
	if out, _ := guestRun(c, "cat "+stateConfig); !strings.Contains(out, `content: "good"`) || strings.Contains(out, "10.0.2.99") {
		t.Errorf("after the revert %s is:\n%s", stateConfig, out)
	}
	if got := run(t, c, "cat /run/keso-trial"); got != "good" {
		t.Errorf("after the revert: /run/keso-trial = %q, want %q", got, "good")
	}

	// 3. A good config with auto-confirm: confirmed once healthy.
	putFile(t, c, "/root/good2.yaml", fmt.Sprintf(goodConfig, "good2"))
	apply("good2", "--try 2m /root/good2.yaml")
	vm = n.start("auto-trial")
	if _, _, err := vm.Expect(regexp.MustCompile(`config trial: /root/good2.yaml auto-confirmed: the node is healthy on \[10.0.2.15\]`), bootTimeout); err != nil {
		t.Fatal(err)
	}
	c = n.ssh()
	if st := n.status(c); st.ConfigTrial == nil || st.ConfigTrial.State != "confirmed" {
		t.Errorf("auto-confirmed trial: status config_trial = %+v, want confirmed", st.ConfigTrial)
	}
	if out, _ := guestRun(c, "cat "+stateConfig); !strings.Contains(out, `content: "good2"`) {
		t.Errorf("after the auto-confirm %s is:\n%s", stateConfig, out)
	}
}
