package host

import (
	"fmt"
	"syscall"
)

// PeakRSS is this process's peak resident set size so far, in bytes
// (getrusage's ru_maxrss, which Linux gives in KiB).
func PeakRSS() (int64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return int64(ru.Maxrss) << 10, nil
}
