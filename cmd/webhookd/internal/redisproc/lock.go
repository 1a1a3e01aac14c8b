package redisproc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The data directory has two lock files, each an flock(2) lock that the
// kernel releases when the last descriptor of it closes, however its
// holder dies:
//
//   - ownerLock is held by the webhookd that manages the directory. Only
//     webhookd has it open (Go opens files close-on-exec), so while it is
//     locked a live webhookd owns the directory and a second one fails
//     at once.
//   - serverLock is held by webhookd and inherited by its redis-server
//     (fd 3), so it stays locked until that redis-server has exited too.
//     After a kill -9 of webhookd, its orphaned redis-server (told to stop
//     by the parent-death signal) keeps it until it has flushed its AOF
//     and gone; the next webhookd waits for that instead of starting a
//     second redis-server on the same AOF.
const (
	ownerLock  = "webhookd.lock"
	serverLock = "redis-server.lock"
)

// lockPoll is how often a busy serverLock is tried again.
const lockPoll = 20 * time.Millisecond

// lockOwner takes ownerLock in dir, or fails at once naming the webhookd
// that holds it.
func lockOwner(dir string) (*os.File, error) {
	f, err := openLock(dir, ownerLock)
	if err != nil {
		return nil, err
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by webhookd %s", ErrInUse, f.Name(), holder(f.Name()))
		}
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	if err := writeHolder(f, "pid "+strconv.Itoa(os.Getpid())); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// lockServer takes serverLock in dir, waiting up to wait for a
// redis-server of a previous webhookd to exit.
func lockServer(dir string, wait time.Duration, waiting func(holder string)) (*os.File, error) {
	f, err := openLock(dir, serverLock)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for said := false; ; said = true {
		err := tryLock(f)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w: the redis-server of an earlier webhookd (%s) still runs on %s after %s; stop it, then start again",
				ErrInUse, holder(f.Name()), dir, wait)
		}
		if !said {
			waiting(holder(f.Name()))
		}
		time.Sleep(lockPoll)
	}
}

func openLock(dir, name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDir, err)
	}
	return f, nil
}

func tryLock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// writeHolder records who holds the lock, for the message of the next
// process that finds it locked.
func writeHolder(f *os.File, who string) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	if _, err := f.WriteAt([]byte(who+"\n"), 0); err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return nil
}

// holder reads what the holder of a lock file wrote into it.
func holder(path string) string {
	b, err := os.ReadFile(path)
	if s := strings.TrimSpace(string(b)); err == nil && s != "" {
		return s
	}
	return "pid unknown"
}
