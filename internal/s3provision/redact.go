package s3provision

import (
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Mask replaces secrets in redacted text.
const Mask = "[REDACTED]"

// RedactString replaces every occurrence of each secret (raw, and in URL
// query and path encodings) in s with Mask.
func RedactString(s string, secrets ...string) string {
	var forms []string
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		forms = append(forms, sec, url.QueryEscape(sec), url.PathEscape(sec))
	}
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	for _, f := range forms {
		s = strings.ReplaceAll(s, f, Mask)
	}
	return s
}

// RedactingWriter scrubs known secrets from everything written through it:
// a last line of defence behind the code's own care (slog writes one record
// per Write, so a secret is never split across writes).
type RedactingWriter struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
}

// NewRedactingWriter wraps w.
func NewRedactingWriter(w io.Writer) *RedactingWriter { return &RedactingWriter{w: w} }

// Add registers secrets to scrub from now on.
func (r *RedactingWriter) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if s != "" {
			r.secrets = append(r.secrets, s)
		}
	}
}

// Write writes p with every registered secret replaced by Mask.
func (r *RedactingWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.secrets) == 0 {
		return r.w.Write(p)
	}
	if _, err := io.WriteString(r.w, RedactString(string(p), r.secrets...)); err != nil {
		return 0, err
	}
	return len(p), nil
}
