// Package e2e boots keso's real artifacts in QEMU (software emulation) and
// checks that each boot path reaches the k3s handoff: the images are built
// by keso-build with the test-only k3s stand-in (test/k3s-standin) in place
// of k3s, and every test asserts on what the stand-in recorded (boot mode,
// slot, k3s arguments, mounts, /var size), not only on a console line.
//
// The artifacts are built once per test run into /var/tmp/keso-e2e/<hash>
// (KESO_E2E_CACHE overrides), keyed by a hash of the sources, profiles and
// inputs, so unchanged trees reuse them. Set KESO_E2E=0 to skip the boots.
package e2e
