package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Files in the data directory that keep what `serve` generates for a
// local start, so that yesterday's curl and sink command still work:
// the API key (when no --api-key is given) and the banner's sink
// secret. Mode 0600: they are credentials.
const (
	apiKeyFile     = "api-key"
	sinkSecretFile = "sink-secret"
)

// kept is a generated value and where it is kept.
type kept struct {
	Value  string
	Path   string // "" when it could not be written (Note says why)
	Reused bool   // read from Path rather than generated now
	Note   string
}

// keepGenerated returns the value kept in dir/name, or generates one
// with gen and writes it there (mode 0600, the directory 0700). A file
// that cannot be read or written is not fatal: the value is used for
// this run only and Note says why.
func keepGenerated(dir, name string, gen func() string) kept {
	path := filepath.Join(dir, name)
	if b, err := os.ReadFile(path); err == nil {
		if v := strings.TrimSpace(string(b)); v != "" {
			return kept{Value: v, Path: path, Reused: true}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return kept{Value: gen(), Note: fmt.Sprintf("%s could not be read (%v): a new one is used for this run only", path, err)}
	}
	v := gen()
	if err := writeSecretFile(path, v); err != nil {
		return kept{Value: v, Note: fmt.Sprintf("%s could not be written (%v): this one lasts for this run only", path, err)}
	}
	return kept{Value: v, Path: path}
}

// writeSecretFile writes v to path, readable by its owner only.
func writeSecretFile(path, v string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	// OpenFile's mode applies only to a file it creates: an existing one
	// (empty, say) keeps its own until told.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(v + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
