package subscriptions

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
)

// Keyring maps API keys to accounts. It keeps only SHA-256 digests of the
// keys, and Lookup compares against every entry in constant time, so
// neither response timing nor a memory dump reveals a key. It is
// immutable and safe for concurrent use.
type Keyring struct {
	entries []keyEntry
}

type keyEntry struct {
	digest  [sha256.Size]byte
	account string
}

// ValidateAccountID checks an account id: 1–64 ASCII letters, digits,
// '_' or '-'. Account ids become one NATS subject token
// (<topic>.<account_id>) and a Redis hash tag (acct:{<account_id>}), so
// dots, wildcards, braces and spaces are out.
func ValidateAccountID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("account id must be 1-64 characters: %w", ErrInvalid)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		allowed := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !allowed {
			return fmt.Errorf("account id %q may only contain letters, digits, '_' and '-': %w", id, ErrInvalid)
		}
	}
	return nil
}

// NewKeyring returns a Keyring for keys, a map from API key to account
// id. Empty keys, keys with white space and invalid account ids are
// errors; the errors name the account, never the key.
func NewKeyring(keys map[string]string) (*Keyring, error) {
	k := &Keyring{entries: make([]keyEntry, 0, len(keys))}
	for key, account := range keys {
		if err := ValidateAccountID(account); err != nil {
			return nil, fmt.Errorf("subscriptions: api key for account %q: %w", account, err)
		}
		if err := checkKey(key); err != nil {
			return nil, fmt.Errorf("subscriptions: api key for account %q: %w", account, err)
		}
		k.entries = append(k.entries, keyEntry{digest: sha256.Sum256([]byte(key)), account: account})
	}
	return k, nil
}

// ParseKeys builds a Keyring from "KEY=ACCOUNT" entries, as given by
// repeated --api-key flags or the comma list in WEBHOOKD_API_KEYS.
// Surrounding spaces are trimmed. Errors name the entry by its position
// (1-based) and account, never by its key. A key listed twice is an error
// even for the same account, since it is almost certainly a paste mistake.
func ParseKeys(entries []string) (*Keyring, error) {
	keys := make(map[string]string, len(entries))
	for i, e := range entries {
		e = strings.TrimSpace(e)
		j := strings.LastIndexByte(e, '=')
		if j < 0 {
			return nil, fmt.Errorf("subscriptions: api key entry %d: want KEY=ACCOUNT: %w", i+1, ErrInvalid)
		}
		key, account := e[:j], e[j+1:]
		if err := ValidateAccountID(account); err != nil {
			return nil, fmt.Errorf("subscriptions: api key entry %d: %w", i+1, err)
		}
		if err := checkKey(key); err != nil {
			return nil, fmt.Errorf("subscriptions: api key entry %d (account %s): %w", i+1, account, err)
		}
		if _, dup := keys[key]; dup {
			return nil, fmt.Errorf("subscriptions: api key entry %d (account %s): key listed twice: %w", i+1, account, ErrInvalid)
		}
		keys[key] = account
	}
	return NewKeyring(keys)
}

// checkKey rejects keys that cannot come back intact through a header or
// a comma-separated environment variable.
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("empty key: %w", ErrInvalid)
	}
	for _, r := range key {
		if r <= ' ' || r == ',' || r == 0x7f {
			return fmt.Errorf("key contains white space, a control character or a comma: %w", ErrInvalid)
		}
	}
	return nil
}

// Len returns the number of keys.
func (k *Keyring) Len() int { return len(k.entries) }

// Lookup returns the account of key. It hashes key once and compares the
// digest with every entry using crypto/subtle, without an early exit, so
// the time taken depends only on the number of entries: it reveals
// neither a matching prefix nor which entry matched.
func (k *Keyring) Lookup(key string) (account string, ok bool) {
	d := sha256.Sum256([]byte(key))
	found := -1
	for i := range k.entries {
		eq := subtle.ConstantTimeCompare(d[:], k.entries[i].digest[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return "", false
	}
	return k.entries[found].account, true
}

// keyAlphabet is what GenerateKey draws from: alphanumerics only, so keys
// survive shells, URLs, headers and comma lists unquoted.
const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// GenerateKey returns a new random API key: "pk_" followed by 34
// alphanumerics from crypto/rand (about 202 bits), the shape of Klaviyo's
// private keys.
func GenerateKey() string {
	const n = 34
	out := make([]byte, 0, 3+n)
	out = append(out, "pk_"...)
	var buf [64]byte
	for len(out) < cap(out) {
		_, _ = rand.Read(buf[:]) // never fails: since Go 1.24 it crashes the program instead
		for _, b := range buf {
			// Reject bytes ≥ 248 (4·62) so every character is equally likely.
			if int(b) < 4*len(keyAlphabet) && len(out) < cap(out) {
				out = append(out, keyAlphabet[int(b)%len(keyAlphabet)])
			}
		}
	}
	return string(out)
}
