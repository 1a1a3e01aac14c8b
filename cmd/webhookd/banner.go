package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/webhookd/webhookd/batcher"
)

// bannerInfo is what the start-up banner shows.
type bannerInfo struct {
	APIURL       string
	Key          kept   // the API key kept in the data dir; empty Value if keys are configured
	SinkSecret   kept   // the example sink's secret, kept in the data dir
	Account      string // account of the generated key
	NATSURL      string
	NATSDesc     string
	RedisDesc    string
	Subjects     []string
	InsecureOK   bool
	ProgramName  string
	SinkAddrPort string
	Notes        []string // start-up facts the user must see (a busy default port replaced)
}

// printBanner writes one human-readable block to w (stderr, not the JSON
// log): where the API and NATS are, the generated API key (the only place
// it ever appears), and commands to try webhookd end to end.
func printBanner(w io.Writer, b bannerInfo) {
	var s strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&s, format+"\n", a...) }
	key := b.Key.Value
	p("")
	p("webhookd %s is running", version)
	p("  API        %s  (health: %s/healthz)", b.APIURL, b.APIURL)
	p("  Console    %s/console/  (sign in with an API key, or --admin-key for every account)", b.APIURL)
	switch {
	case key == "":
		key = "$KEY"
		p("  API keys   from --api-key or WEBHOOKD_API_KEYS (KEY=ACCOUNT, comma list);")
		p("             the commands below expect one of those keys in the shell variable KEY")
	case b.Key.Path == "":
		p("  API key    %s  (account %q; %s)", key, b.Account, b.Key.Note)
	case b.Key.Reused:
		p("  API key    %s  (account %q; kept in %s since the first start;", key, b.Account, b.Key.Path)
		p("             delete that file for a new key, or pass --api-key / WEBHOOKD_API_KEYS to use your own)")
	default:
		p("  API key    %s  (account %q; generated now and kept in %s, mode 0600, for the next", key, b.Account, b.Key.Path)
		p("             starts; delete that file for a new key, or pass --api-key / WEBHOOKD_API_KEYS to use your own)")
	}
	p("  NATS       %s  (%s)", b.NATSURL, b.NATSDesc)
	p("             producers publish events on <topic> or <topic>.<account>; stream subjects %s", strings.Join(b.Subjects, ","))
	p("  Redis      %s", b.RedisDesc)
	for _, n := range b.Notes {
		p("  note       %s", n)
	}
	p("")

	secret := b.SinkSecret.Value
	if b.SinkSecret.Note != "" {
		p("  note       sink secret: %s", b.SinkSecret.Note)
	}
	body := `{"data":{"type":"webhook","attributes":{"name":"dev sink","endpoint_url":"http://` + b.SinkAddrPort +
		`/hook","secret_key":"` + secret + `"},"relationships":{"webhook-topics":{"data":[{"type":"webhook-topic","id":"event:klaviyo.sent_sms"}]}}}}`
	p("Try it end to end:")
	p("  # 1. in another terminal, a receiving endpoint that verifies signatures (its secret is kept in the data dir)")
	p("  %s sink --addr %s --secret %s", b.ProgramName, b.SinkAddrPort, secret)
	p("  # 2. create a webhook for event:klaviyo.sent_sms pointing at it")
	authQuote := "'"
	if strings.HasPrefix(key, "$") {
		authQuote = `"` // let the shell expand $KEY
	}
	p("  curl -sS -X POST %s/api/webhooks \\", b.APIURL)
	p("    -H %sAuthorization: Klaviyo-API-Key %s%s \\", authQuote, key, authQuote)
	p("    -H 'revision: %s' -H 'Content-Type: application/vnd.api+json' \\", batcher.Version)
	p("    -d '%s'", body)
	if !b.InsecureOK {
		p("    (an http://127.0.0.1 endpoint needs serve --allow-insecure-endpoints)")
	}
	p("  # 3. publish 100 generated sent_sms events; the sink reports them")
	p("  %s publish --nats-url %s --topic event:klaviyo.sent_sms --generate --count 100", b.ProgramName, b.NATSURL)
	p("")
	_, _ = io.WriteString(w, s.String())
}

// demoSecret returns a fresh webhook secret for the banner's example.
func demoSecret() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return "whsec_dev_" + hex.EncodeToString(b[:])
}

// programName is how the banner's commands invoke webhookd: the running
// binary, relative to the working directory when it is under it
// (bin/webhookd after `make run`), so the commands paste as they are.
func programName() string {
	exe, err := os.Executable()
	if err != nil {
		return "webhookd"
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, exe); err == nil && !strings.HasPrefix(rel, "..") {
			if !strings.Contains(rel, string(filepath.Separator)) {
				rel = "." + string(filepath.Separator) + rel
			}
			return rel
		}
	}
	return exe
}

// insecureHint is the start-up warning for a user who is clearly working
// locally (the API listens on loopback) without
// --allow-insecure-endpoints: the http://127.0.0.1 receiver they are
// about to create would be refused, and the API's answer cannot tell
// them about a server flag. "" when it does not apply.
func insecureHint(cfg serveConfig) string {
	if cfg.AllowInsecureEndpoints {
		return ""
	}
	host, _, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		return ""
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return ""
	}
	return "endpoints must be https:// URLs on public hosts, so a local receiver such as http://127.0.0.1:9000 is refused; " +
		"for local development start serve with --allow-insecure-endpoints (WEBHOOKD_ALLOW_INSECURE_ENDPOINTS=true; make run does)"
}
