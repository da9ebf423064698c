package host

import "github.com/keso-os/keso/pkg/verity"

// OpenVerity maps dataDev through dm-verity with the tree on the same
// device (pkg/verity's ioctls) and returns the /dev/dm-N path.
func (Linux) OpenVerity(name, dataDev string, t *verity.Tree) (string, error) {
	return verity.Open(name, dataDev, dataDev, t)
}
