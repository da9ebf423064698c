package host

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	evKey    = 1
	keyPower = 116
)

// PowerButton reports presses of a power key (the ACPI power button, which
// QEMU's system_powerdown presses) on any /dev/input/event* device: keso
// has no acpid, so it reads key events itself. The evdev and button modules
// must be loaded. The channel closes when ctx ends.
func (Linux) PowerButton(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	devs, _ := filepath.Glob("/dev/input/event*")
	size := int(unsafe.Sizeof(unix.Timeval{})) + 8 // struct input_event
	for _, dev := range devs {
		f, err := os.Open(dev)
		if err != nil {
			continue
		}
		go func() {
			<-ctx.Done()
			f.Close()
		}()
		go func() {
			buf := make([]byte, size)
			for {
				if _, err := io.ReadFull(f, buf); err != nil {
					return
				}
				typ := binary.NativeEndian.Uint16(buf[size-8:])
				code := binary.NativeEndian.Uint16(buf[size-6:])
				value := int32(binary.NativeEndian.Uint32(buf[size-4:]))
				if typ == evKey && code == keyPower && value == 1 {
					select {
					case ch <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	return ch
}
