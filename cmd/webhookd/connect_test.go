package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/test/harness"
)

// fakeNATS is the smallest server a NATS client connects to: it sends an
// INFO line naming version, and answers PING with PONG (the client's
// handshake is CONNECT then PING). It stands in for an old nats-server,
// such as Debian's 2.9.10, which the CI machine does not have.
func fakeNATS(tb testing.TB, version string) string {
	tb.Helper()
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, `INFO {"server_id":"FAKE","server_name":"fake","version":%q,"proto":1,"go":"go1.19","host":"127.0.0.1","port":%d,"headers":true,"max_payload":1048576}`+"\r\n", version, port)
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "PING") {
						_, _ = io.WriteString(c, "PONG\r\n")
					}
				}
			}()
		}
	}()
	return fmt.Sprintf("nats://127.0.0.1:%d", port)
}

// `webhookd serve` refuses a nats-server older than the dispatcher needs,
// naming the version found, the URL and the version needed, instead of
// serving an API whose webhooks can never be delivered.
func TestServeRefusesOldNATS(t *testing.T) {
	url := fakeNATS(t, "2.9.10")
	rdb := harness.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, []string{"serve", "--nats-url", url, "--redis-url", rdb.URL, "--http-addr", "127.0.0.1:0",
		"--api-key", "old-nats-test-key-0123=default"}, func(string) string { return "" }, nil, io.Discard, io.Discard)
	for _, want := range []string{"--nats-url", url, "nats-server 2.9.10 is too old", "webhookd needs 2.10.4 or newer"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("serve against nats-server 2.9.10 = %v, want an error containing %q", err, want)
		}
	}
}

// The fake is a server the client does connect to: with a recent
// version, the check passes.
func TestConnectNATSVersion(t *testing.T) {
	for _, tt := range []struct {
		version string
		ok      bool
	}{{"2.9.10", false}, {"2.10.3", false}, {"2.10.4", true}, {"2.12.1", true}, {"nonsense", false}} {
		nc, err := connectNATS("nats-url", fakeNATS(t, tt.version), zerolog.Nop())
		if nc != nil {
			nc.Close()
		}
		if (err == nil) != tt.ok {
			t.Errorf("connectNATS to nats-server %s = %v, want ok %t", tt.version, err, tt.ok)
		}
	}
}
