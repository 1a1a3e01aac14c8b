package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// A busy default port should not end the first `make run`: when
// --http-addr or --nats-listen is left at its default and that port is
// taken (another webhookd, a local nats-server), serve takes a free port
// on the same host and the banner says so and how to choose one. An
// address the user gave is theirs: a busy one fails, naming the flag
// and the commands that work.

// listenHTTP listens on cfg.HTTPAddr, or on a free port of its host when
// the default port is taken. note is the banner's line about it, "" when
// the address is the one asked for.
func listenHTTP(ctx context.Context, cfg serveConfig) (ln net.Listener, note string, err error) {
	var lc net.ListenConfig
	ln, err = lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err == nil {
		return ln, "", nil
	}
	if !cfg.HTTPAddrDefault || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, "", busyError("http-addr", cfg.HTTPAddr, err)
	}
	host, _, _ := net.SplitHostPort(cfg.HTTPAddr)
	ln, err2 := lc.Listen(ctx, "tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return nil, "", busyError("http-addr", cfg.HTTPAddr, err)
	}
	return ln, fmt.Sprintf("port of %s is taken: the API listens on %s instead (choose one with --http-addr or WEBHOOKD_HTTP_ADDR; make run ARGS='--http-addr HOST:PORT')",
		cfg.HTTPAddr, ln.Addr()), nil
}

// natsListenAddr is the address the embedded NATS server should listen
// on: cfg.NATSListen, or port 0 of its host (a free port, which the
// server picks) when the default port is taken. The probe and the
// server's own bind are not atomic; losing that race fails start-up as
// a busy port always did.
func natsListenAddr(ctx context.Context, cfg serveConfig) (addr, note string) {
	if !cfg.NATSListenDefault {
		return cfg.NATSListen, ""
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.NATSListen)
	if err == nil {
		ln.Close()
		return cfg.NATSListen, ""
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return cfg.NATSListen, ""
	}
	host, _, _ := net.SplitHostPort(cfg.NATSListen)
	return net.JoinHostPort(host, "0"), fmt.Sprintf("port of %s is taken: the embedded NATS server listens on a free port instead (shown above; choose one with --nats-listen or WEBHOOKD_NATS_LISTEN; make run ARGS='--nats-listen HOST:PORT')",
		cfg.NATSListen)
}

// busyError names the flag of an address that cannot be listened on
// and, when it is taken, the two ways to pick another.
func busyError(flagName, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		err = fmt.Errorf("%w; pick a free address: --%s 127.0.0.1:0 (any free port), %s=127.0.0.1:0, or make run ARGS='--%s 127.0.0.1:0'",
			err, flagName, envName(flagName), flagName)
	}
	return &flagError{Flag: flagName, Value: addr, Err: err}
}

// defaultSinkAddr is where the banner's example sink listens.
const defaultSinkAddr = "127.0.0.1:9000"

// sinkAddr is the address the banner suggests for its example sink:
// preferred (defaultSinkAddr) when it is free now, else a port that is
// (another webhookd's sink, say, holds 9000), so the commands paste as
// they are.
func sinkAddr(ctx context.Context, preferred string) string {
	var lc net.ListenConfig
	for _, addr := range []string{preferred, "127.0.0.1:0"} {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err == nil {
			a := ln.Addr().String()
			ln.Close()
			return a
		}
	}
	return preferred
}
