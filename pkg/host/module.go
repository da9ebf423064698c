package host

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// LoadModule loads the kernel module file at path with finit_module. A module
// that is already loaded (EEXIST) is not an error.
func (Linux) LoadModule(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load module %s: %w", path, err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), params, 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: finit_module: %w", path, err)
	}
	return nil
}

// RemoveModule unloads the module name with delete_module (O_NONBLOCK: a
// module in use is an error, not a wait).
func (Linux) RemoveModule(name string) error {
	if err := unix.DeleteModule(name, unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("remove module %s: delete_module: %w", name, err)
	}
	return nil
}
