// Command flowctl converts captures and flow logs to BayseFlow files, queries a FlowFleet collector and
// manages the fleet's certificates. See `flowctl --help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/flowfleet/flowfleet/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := ctl.NewRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowctl:", err)
		os.Exit(1)
	}
}
