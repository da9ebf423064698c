// Command pause is the pod sandbox's process in the real-node test's pause
// image (a TEST FIXTURE): it sleeps until it is told to stop and reaps
// children meanwhile, as registry.k8s.io/pause does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 4)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range c {
		if s == syscall.SIGCHLD {
			var ws syscall.WaitStatus
			for {
				if pid, _ := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
