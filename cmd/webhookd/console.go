package main

import (
	"errors"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/api/authlimit"
	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/api/console/deadletter"
	"github.com/webhookd/webhookd/subscriptions"
)

// newAuthLimit is the failed-authentication limit the API and the
// console's sign-in share; nil with --auth-fail-burst 0.
func newAuthLimit(cfg serveConfig, log zerolog.Logger) *authlimit.Limiter {
	if cfg.AuthFailBurst == 0 {
		return nil
	}
	return authlimit.New(authlimit.Config{Burst: cfg.AuthFailBurst, Refill: cfg.AuthFailRefill,
		Proxies: cfg.TrustedProxies, Log: log.With().Str("component", "auth").Logger()})
}

// newConsole wires the web console: the API's keyring, rate limit and
// failed-authentication limit, the operator key, sessions in Redis, and
// the dead-letter stream.
// The features other packages hold plug in through console.Plugins
// (consoleplug.go).
func newConsole(cfg serveConfig, store *subscriptions.Store, keys *subscriptions.Keyring, limiter *api.Limiter,
	authLimit *authlimit.Limiter, js jetstream.JetStream, rdb redis.UniversalClient, plugins console.Plugins, log zerolog.Logger) (*console.Console, error) {
	ccfg := console.Config{
		Store:    store,
		Keys:     keys,
		Sessions: console.NewRedisSessions(rdb),
		Limiter:  limiter,
		// A nil *authlimit.Limiter (--auth-fail-burst 0) limits nothing.
		AuthLimit: authLimit,
		Accounts:  apiKeyAccounts(cfg),
		// serve keeps the dispatcher's stream and dead-letter names, which
		// are the reader's defaults too.
		DeadLetters: &deadletter.Reader{JS: js, DefaultAccount: cfg.DefaultAccount},
		Plugins:     plugins,
		Version:     version,
		Log:         log,
	}
	if cfg.AdminKey != "" {
		op, err := operatorKeyring(cfg.AdminKey, keys)
		if err != nil {
			return nil, err
		}
		ccfg.Operator = op
	}
	return console.New(ccfg)
}

// operatorKeyring holds the operator key alone. Its errors never quote
// the key.
func operatorKeyring(key string, accounts *subscriptions.Keyring) (*subscriptions.Keyring, error) {
	if _, taken := accounts.Lookup(key); taken {
		return nil, errors.New("--admin-key: the operator key is also an account's API key; use a key of its own")
	}
	op, err := subscriptions.NewKeyring(map[string]string{key: "operator"})
	if err != nil {
		return nil, errors.New("--admin-key: must not be empty or contain white space, control characters or commas")
	}
	return op, nil
}

// apiKeyAccounts are the accounts of the configured API keys (and the
// default account), which the operator sees even before their first
// webhook.
func apiKeyAccounts(cfg serveConfig) []string {
	out := []string{cfg.DefaultAccount}
	for _, e := range cfg.APIKeys {
		if i := strings.LastIndexByte(e, '='); i >= 0 {
			out = append(out, strings.TrimSpace(e[i+1:]))
		}
	}
	return out
}
