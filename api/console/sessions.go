package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoSession means the session token is unknown or expired.
var ErrNoSession = errors.New("console: no such session")

// Session is one signed-in browser.
type Session struct {
	// Account is the account signed in with its API key; "" for the
	// operator.
	Account  string
	Operator bool
	// CSRF is the token every state-changing form of this session must
	// carry (a synchronizer token, compared in constant time).
	CSRF string
}

// Sessions stores sessions by token. NewRedisSessions is the one used by
// `webhookd serve`.
type Sessions interface {
	Create(ctx context.Context, s Session, ttl time.Duration) (token string, err error)
	Get(ctx context.Context, token string) (Session, error)
	Delete(ctx context.Context, token string) error
}

// RedisSessions keeps sessions in Redis under console:session:<digest>,
// a hash that expires with the session. Server-side sessions rather than
// signed cookies because every replica must accept them without sharing
// a signing key, and because logout (or deleting the keys) must end a
// session at once. Only the SHA-256 digest of the token is stored, so a
// Redis dump holds no usable session.
type RedisSessions struct {
	rdb redis.UniversalClient
}

// NewRedisSessions returns sessions stored in rdb.
func NewRedisSessions(rdb redis.UniversalClient) *RedisSessions { return &RedisSessions{rdb: rdb} }

func sessionKey(token string) string {
	d := sha256.Sum256([]byte(token))
	return "console:session:" + hex.EncodeToString(d[:])
}

// Create stores s for ttl under a new random token.
func (rs *RedisSessions) Create(ctx context.Context, s Session, ttl time.Duration) (string, error) {
	token := randomToken()
	key := sessionKey(token)
	op := "0"
	if s.Operator {
		op = "1"
	}
	_, err := rs.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "account", s.Account, "operator", op, "csrf", s.CSRF)
		p.PExpire(ctx, key, ttl)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("console: create session: %w", err)
	}
	return token, nil
}

// Get returns the session of token, or ErrNoSession.
func (rs *RedisSessions) Get(ctx context.Context, token string) (Session, error) {
	if token == "" {
		return Session{}, ErrNoSession
	}
	m, err := rs.rdb.HGetAll(ctx, sessionKey(token)).Result()
	if err != nil {
		return Session{}, fmt.Errorf("console: session: %w", err)
	}
	if len(m) == 0 || m["csrf"] == "" {
		return Session{}, ErrNoSession
	}
	return Session{Account: m["account"], Operator: m["operator"] == "1", CSRF: m["csrf"]}, nil
}

// Delete ends the session of token; an unknown token is not an error.
func (rs *RedisSessions) Delete(ctx context.Context, token string) error {
	if err := rs.rdb.Del(ctx, sessionKey(token)).Err(); err != nil {
		return fmt.Errorf("console: delete session: %w", err)
	}
	return nil
}

// randomToken returns 32 bytes from crypto/rand, base64url: session
// tokens and CSRF tokens.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails: since Go 1.24 it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b[:])
}
