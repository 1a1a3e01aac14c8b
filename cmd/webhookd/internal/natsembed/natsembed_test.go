package natsembed

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// The server serves JetStream on its listener and in-process, and a
// busy port is the Listen setting's fault.
func TestStart(t *testing.T) {
	store := filepath.Join(t.TempDir(), "nats")
	s, err := Start(Config{Listen: "127.0.0.1:0", StoreDir: store}, zerolog.Nop())
	if err != nil {
		t.Fatalf("Start() = %v", err)
	}
	defer s.Shutdown()
	for _, c := range []struct {
		name string
		url  string
		opts []nats.Option
	}{
		{"tcp", s.ClientURL(), nil},
		{"in-process", "", []nats.Option{s.ConnectOption()}},
	} {
		nc, err := nats.Connect(c.url, c.opts...)
		if err != nil {
			t.Fatalf("%s: connect: %v", c.name, err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := js.AccountInfo(ctx); err != nil {
			t.Errorf("%s: JetStream account info: %v", c.name, err)
		}
		cancel()
		nc.Close()
	}

	busy := strings.TrimPrefix(s.ClientURL(), "nats://")
	_, err = Start(Config{Listen: busy, StoreDir: filepath.Join(t.TempDir(), "nats")}, zerolog.Nop())
	if se, ok := errors.AsType[*SettingError](err); !ok || se.Field != "Listen" {
		t.Errorf("Start on a busy port = %v, want a SettingError for Listen", err)
	}
}

func TestStartBadSettings(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file") // a store cannot be made under a file
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cfg   Config
		field string
	}{
		{Config{Listen: "nowhere", StoreDir: t.TempDir()}, "Listen"},
		{Config{Listen: "127.0.0.1:x", StoreDir: t.TempDir()}, "Listen"},
		{Config{Listen: "127.0.0.1:0", StoreDir: filepath.Join(file, "nats")}, "StoreDir"},
	} {
		_, err := Start(tt.cfg, zerolog.Nop())
		if se, ok := errors.AsType[*SettingError](err); !ok || se.Field != tt.field {
			t.Errorf("Start(%+v) = %v, want a SettingError for %s", tt.cfg, err, tt.field)
		}
	}
}
