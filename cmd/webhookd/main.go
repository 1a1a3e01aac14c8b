// Command webhookd delivers system webhooks: see README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "webhookd:", err)
		os.Exit(1)
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// run is the whole program, with its environment passed in so tests
// can drive it: args without the program name, getenv for the WEBHOOKD_*
// twins of flags, and the three standard streams. It returns when the
// subcommand is done or ctx is cancelled (SIGINT/SIGTERM) and the
// subcommand has shut down.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: webhookd serve|publish|sink|version [flags]")
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], getenv, stderr)
	case "publish":
		return runPublish(ctx, args[1:], stdin, stdout, stderr)
	case "sink":
		return runSink(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "webhookd", version)
		return nil
	}
	return fmt.Errorf("unknown command %q (want serve, publish, sink or version)", args[0])
}
