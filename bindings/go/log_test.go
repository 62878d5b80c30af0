package nexvitad_test

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

func TestLogHandler(t *testing.T) {
	var mu sync.Mutex
	var got []string
	err := nexvitad.SetLogHandler(func(level nexvitad.LogLevel, msg string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, level.String()+" "+msg)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nexvitad.SetLogHandler(nil)

	m := openTiny(t)
	b := loadFixtureBank(t, m)
	if err := b.Save(filepath.Join(t.TempDir(), "x.bank")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n := len(got)
	all := strings.Join(got, "\n")
	mu.Unlock()
	if n < 3 || !strings.Contains(all, "INFO") || !strings.Contains(strings.ToLower(all), "bank") {
		t.Errorf("want INFO messages for the model open, bank load and save, got %d:\n%s", n, all)
	}

	if err := nexvitad.SetLogHandler(nil); err != nil {
		t.Fatal(err)
	}
	openTiny(t)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n {
		t.Errorf("messages after the handler was removed: %q", got[n:])
	}
}
