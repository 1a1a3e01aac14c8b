package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// envName returns the environment twin of a flag: WEBHOOKD_ followed by
// the flag name in upper case with dashes as underscores.
func envName(flagName string) string {
	return "WEBHOOKD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag of fs that was not given on the command line
// from its environment twin (see envName), so flags win over the
// environment. An empty variable counts as unset. Flags named in skip
// have no generic twin (--api-key reads WEBHOOKD_API_KEYS itself). It
// returns the flags it set, mapped to the variable they came from, so
// later validation errors can say where a bad value was written.
func applyEnv(fs *flag.FlagSet, getenv func(string) string, skip ...string) (map[string]string, error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range skip {
		given[s] = true
	}
	fromEnv := map[string]string{}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := envName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("--%s %q (from %s): %w", f.Name, redactURL(v), name, withoutSecrets(err, v)))
			return
		}
		fromEnv[f.Name] = name
	})
	return fromEnv, errors.Join(errs...)
}

// flagError is a validation error that names the flag at fault, the
// value tried and, when it came from the environment, the variable.
type flagError struct {
	Flag  string // without dashes
	Value string // as the user wrote it (passwords redacted)
	Env   string // environment variable the value came from, if any
	Err   error
}

func (e *flagError) Error() string {
	src := ""
	if e.Env != "" {
		src = " (from " + e.Env + ")"
	}
	return fmt.Sprintf("--%s %q%s: %v", e.Flag, e.Value, src, e.Err)
}

func (e *flagError) Unwrap() error { return e.Err }

// redactURL hides the password of a URL-shaped value (redis://:pw@host)
// so error messages and logs can quote the rest, even when the URL does
// not parse. Anything else is returned unchanged.
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var out []string
	// nats URLs may be comma lists of servers.
	for _, part := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			out = append(out, redactUserinfo(part))
			continue
		}
		if u.User == nil {
			out = append(out, part)
			continue
		}
		if _, has := u.User.Password(); has {
			out = append(out, u.Redacted())
		} else if u.User.Username() != "" && u.Scheme == "nats" {
			// nats://TOKEN@host puts a token where a user name goes.
			u.User = url.User("xxxxx")
			out = append(out, u.String())
		} else {
			out = append(out, part)
		}
	}
	return strings.Join(out, ",")
}

// redactUserinfo hides everything between "://" and the last "@" of the
// authority of a URL that url.Parse refused: its user name may be a
// token, so all of it goes.
func redactUserinfo(s string) string {
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	authority, _, _ := strings.Cut(rest, "/")
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return s
	}
	return s[:len(s)-len(rest)] + "xxxxx" + rest[at:]
}

// withoutSecrets returns err with every occurrence of the URL raw in its
// text redacted: parsers and clients quote the URL they were given
// (url.Error does), password included.
func withoutSecrets(err error, raw string) error {
	if err == nil || raw == "" || redactURL(raw) == raw || !strings.Contains(err.Error(), raw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), raw, redactURL(raw)))
}

// stringList is a repeatable string flag (--api-key K=A --api-key K2=B).
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// commaList is a flag holding a comma-separated list; setting it again
// replaces the list. Surrounding spaces and empty items are dropped.
type commaList []string

func (l *commaList) String() string { return strings.Join(*l, ",") }

func (l *commaList) Set(s string) error {
	*l = splitComma(s)
	return nil
}

// splitComma splits a comma list, dropping spaces around items and empty
// items.
func splitComma(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// byteSize is a size flag. It accepts a plain number of bytes (4194304)
// or a number with a unit: binary KiB, MiB, GiB (also Ki, Mi, Gi) or
// decimal kB, MB, GB (also k, M, G), case-insensitive.
type byteSize int64

var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1000, "kb": 1000, "m": 1000 * 1000, "mb": 1000 * 1000, "g": 1000 * 1000 * 1000, "gb": 1000 * 1000 * 1000,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30,
}

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := byteUnits[unit]
	if !ok || num == "" {
		return fmt.Errorf("want bytes, e.g. 4194304, 4MiB or 512KiB")
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return fmt.Errorf("want bytes, e.g. 4194304, 4MiB or 512KiB")
	}
	v := f * float64(mult)
	if v > 1<<62 {
		return fmt.Errorf("too large")
	}
	*b = byteSize(v)
	return nil
}

func (b *byteSize) String() string {
	v := int64(*b)
	switch {
	case v != 0 && v%(1<<30) == 0:
		return strconv.FormatInt(v>>30, 10) + "GiB"
	case v != 0 && v%(1<<20) == 0:
		return strconv.FormatInt(v>>20, 10) + "MiB"
	case v != 0 && v%(1<<10) == 0:
		return strconv.FormatInt(v>>10, 10) + "KiB"
	}
	return strconv.FormatInt(v, 10)
}
