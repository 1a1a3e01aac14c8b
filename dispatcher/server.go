package dispatcher

import (
	"fmt"
	"strconv"
	"strings"
)

// MinServerVersion is the oldest nats-server the dispatcher works with:
// consumers with several filter subjects (FilterSubjects, one consumer
// per webhook over all its topics) need 2.10.0, and terminating a message
// with a reason (TermWithReason, dead letters) needs 2.10.4. An older
// server accepts the connection and the API still answers, but every
// consumer fails, so webhookd checks at start-up instead (issue 13:
// Debian's 2.9.10).
const MinServerVersion = "2.10.4"

// CheckServerVersion returns an error naming MinServerVersion when
// version, as a nats-server reports it in its INFO (e.g. "2.10.22" or
// "2.11.0-beta"), is older than MinServerVersion or is not a version.
// A pre-release counts as older than its release (semver), so
// 2.10.4-beta is refused.
func CheckServerVersion(version string) error {
	got, ok := parseVersion(version)
	if !ok {
		return fmt.Errorf("nats-server version %q is not a version: webhookd needs %s or newer", version, MinServerVersion)
	}
	want, _ := parseVersion(MinServerVersion)
	if compareVersions(got, want) < 0 {
		return fmt.Errorf("nats-server %s is too old: webhookd needs %s or newer (consumers with several filter subjects need 2.10.0, TermWithReason 2.10.4)", version, MinServerVersion)
	}
	return nil
}

// serverVersion is a parsed MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD].
type serverVersion struct {
	num [3]int
	pre string // empty for a release
}

// parseVersion parses a semantic version, with an optional leading "v".
func parseVersion(s string) (serverVersion, bool) {
	var v serverVersion
	s = strings.TrimPrefix(s, "v")
	s, _, _ = strings.Cut(s, "+") // build metadata does not order
	s, v.pre, _ = strings.Cut(s, "-")
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v.num[i] = n
	}
	return v, true
}

// compareVersions orders a and b by number, then a release after any of
// its pre-releases, then pre-releases by their text (enough for "beta" <
// "rc"; nats-server's tags never need semver's numeric pre-release rule).
func compareVersions(a, b serverVersion) int {
	for i := range a.num {
		if a.num[i] != b.num[i] {
			if a.num[i] < b.num[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case a.pre == b.pre:
		return 0
	case a.pre == "":
		return 1
	case b.pre == "":
		return -1
	}
	return strings.Compare(a.pre, b.pre)
}
