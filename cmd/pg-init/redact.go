package main

import (
	"io"
	"sync"

	"github.com/kommons/kommons/internal/pgconfig"
)

// redactingWriter scrubs known secrets from everything written through it:
// a last line of defence behind the code's own care (slog writes one
// record per Write, so a secret is never split across writes).
type redactingWriter struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
}

func (r *redactingWriter) add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if s != "" {
			r.secrets = append(r.secrets, s)
		}
	}
}

func (r *redactingWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.secrets) == 0 {
		return r.w.Write(p)
	}
	clean := pgconfig.RedactString(string(p), r.secrets...)
	if _, err := io.WriteString(r.w, clean); err != nil {
		return 0, err
	}
	return len(p), nil
}
