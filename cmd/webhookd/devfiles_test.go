package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A kept credential is mode 0600 even when its file already existed with
// wider permissions (left empty by `touch`, say): the generated key is
// written into it, and must not be readable by others.
func TestKeptFileModeTightened(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, apiKeyFile)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	k := keepGenerated(dir, apiKeyFile, func() string { return "generated-key-0123456789" })
	if k.Path != path || k.Reused {
		t.Fatalf("keepGenerated = %+v; want a new key kept in %s", k, path)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s holds the key with mode %v, want 0600", path, st.Mode().Perm())
	}
}
