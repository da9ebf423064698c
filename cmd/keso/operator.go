package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/keso-os/keso/pkg/operator"
)

func init() {
	register("operator", "run the in-cluster OS upgrade controller (OSVersion)", func(args []string) int {
		fs := flag.NewFlagSet("keso operator", flag.ContinueOnError)
		opts := operator.Flags(fs)
		if err := fs.Parse(args); err != nil {
			return usageExit(err)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := operator.Run(ctx, *opts); err != nil {
			fmt.Fprintln(os.Stderr, "keso operator:", err)
			return 1
		}
		return 0
	})
}
