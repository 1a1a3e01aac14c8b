// Command webhookd delivers system webhooks: see README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "webhookd:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "webhookd:", err)
		os.Exit(1)
	}
}

// version and commit are set at build time by `make build`:
// -ldflags "-X main.version=v1.2.3 -X main.commit=abc1234". An unstamped
// build says "dev" and takes the commit from the Go toolchain's VCS
// stamp, when there is one.
var (
	version = "dev"
	commit  = ""
)

// buildCommit is the commit webhookd was built from, "" when unknown.
func buildCommit() string {
	if commit != "" {
		return commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}

// versionLine is what `webhookd version` prints.
func versionLine() string {
	c := buildCommit()
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("webhookd %s (commit %s, %s)", version, c, runtime.Version())
}

// commands are the subcommands, each with its one-line summary, in the
// order `webhookd help` lists them.
var commands = []struct{ name, summary string }{
	{"serve", "serve the Webhooks API and deliver events (embedded NATS and managed Redis unless told otherwise)"},
	{"publish", "publish events from a file, stdin or a generator to NATS JetStream, waiting for every ack"},
	{"sink", "a receiving endpoint that verifies signatures and reports each batch (local development, benchmarks)"},
	{"version", "print the version and commit webhookd was built from"},
	{"help", "print this list (also -h and --help); `webhookd COMMAND -h` lists a command's flags"},
}

// printUsage writes the command list to w.
func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: webhookd COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
}

// usageError is a command line that cannot run: the error is printed
// once and the exit status is 2, as for flag errors.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// parseFlags parses args into fs. The flag package would print a bad
// flag's error and the whole flag list, and main the error again; here
// the error comes back once, naming the command and how to list its
// flags, and -h prints the list to stderr and returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	usage := fs.Usage
	fs.Usage = func() {} // flag calls it on errors too
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case err != nil:
		return &usageError{msg: fmt.Sprintf("%s: %v (webhookd %s -h lists the flags)", fs.Name(), err, fs.Name())}
	case fs.NArg() > 0:
		return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

// run is the whole program, with its environment passed in so tests
// can drive it: args without the program name, getenv for the WEBHOOKD_*
// twins of flags, and the three standard streams. It returns when the
// subcommand is done or ctx is cancelled (SIGINT/SIGTERM) and the
// subcommand has shut down.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printUsage(stderr)
		return &usageError{msg: "no command given"}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], getenv, stderr)
	case "publish":
		return runPublish(ctx, args[1:], stdin, stdout, stderr)
	case "sink":
		return runSink(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionLine())
		return nil
	case "help", "-h", "-help", "--help":
		printUsage(stdout)
		return nil
	}
	return &usageError{msg: fmt.Sprintf("unknown command %q (webhookd help lists the commands)", args[0])}
}
