// Command sensor captures packets, assembles flows and streams them to a FlowFleet collector. All logic
// is in internal/sensor; see docs/sensor.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/flowfleet/flowfleet/internal/sensor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := sensor.NewCommand(nil).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "sensor:", err)
		stop()
		os.Exit(1)
	}
}
