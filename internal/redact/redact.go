// Package redact masks secrets (passwords, secret keys) in text, errors and
// output streams, for every kommons binary: the one redaction routine behind
// pg-init's and s3-init's stdout/stderr filters, pgready's and pgconfig's
// errors, and pgprovision's. It also holds MinSecretLen, the shortest secret
// kommons accepts where it sets one.
//
// A secret is masked in every form it can take in kommons' output: as is,
// URL-escaped (query and path), as URL user info (user:PASSWORD@host) and
// Go-quoted (%q), each of these also JSON-escaped (slog's JSON handler, with
// and without HTML escaping) and Go-quoted (slog's text handler). Each occurrence becomes Mask, whose fixed
// length says nothing about the secret's. Occurrences are found in the
// original text in one pass, so a mask never combines with its surroundings
// into another match, and text that does not contain a secret is returned
// unchanged.
//
// Secrets shorter than MinSecretLen are masked only where they stand alone:
// an occurrence next to a letter, digit or underscore (or any non-ASCII
// byte) is left as is. kommons refuses such short secrets wherever it sets
// one (pg-init's role and provisioner passwords, s3-init's user secret keys;
// see MinSecretLen), but it must use the ones it is given: an admin
// password, wait-for-pg's password, the S3 admin keys. Masking every
// substring of those would rewrite unrelated text (a one-character password
// replaced that character in every log line) and reveal the secret by the
// pattern of what changed; masking them nowhere could print them. Standing
// alone is how a password appears when it is echoed: quoted, as a value
// after = or :, or in a URL's user info.
package redact

import (
	"bytes"
	"encoding/json"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// MinSecretLen is the shortest password or secret key kommons accepts where
// it sets one: pg-init's spec passwords and bootstrap-provisioner's
// password, s3-init's user secret keys (MinIO itself requires 8). Longer
// secrets are masked wherever they occur; a string this long occurring by
// chance in a log line is not a concern, while a shorter one could be (see
// the package comment).
const MinSecretLen = 12

// Mask replaces every occurrence of a secret.
const Mask = "xxxxx"

// String returns s with every occurrence of every non-empty secret, in each
// of its encodings, replaced by Mask.
func String(s string, secrets ...string) string {
	if s == "" {
		return s
	}
	var spans [][2]int // [start, end) in s, to mask
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		whole := len(sec) < MinSecretLen
		for _, f := range forms(sec) {
			for i := 0; i+len(f) <= len(s); {
				j := strings.Index(s[i:], f)
				if j < 0 {
					break
				}
				start, end := i+j, i+j+len(f)
				if !whole || standsAlone(s, start, end) {
					spans = append(spans, [2]int{start, end})
				}
				i = start + 1 // occurrences may overlap
			}
		}
	}
	if len(spans) == 0 {
		return s
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i][0] < spans[j][0] })
	var b strings.Builder
	last := 0
	for k := 0; k < len(spans); {
		start, end := spans[k][0], spans[k][1]
		for k++; k < len(spans) && spans[k][0] < end; k++ {
			end = max(end, spans[k][1])
		}
		b.WriteString(s[last:start])
		b.WriteString(Mask)
		last = end
	}
	b.WriteString(s[last:])
	return b.String()
}

// forms returns the distinct encodings of sec that output may contain: the
// secret as is, URL-escaped, as URL user info and Go-quoted (as error text
// may hold it), each also as a log handler escapes it (JSON, with and
// without HTML escaping, or Go-quoted).
func forms(sec string) []string {
	inText := []string{
		sec,
		url.QueryEscape(sec),
		url.PathEscape(sec),
		strings.TrimPrefix(url.UserPassword("u", sec).String(), "u:"),
		quoted(sec),
	}
	var out []string
	add := func(f string) {
		if f != "" && !contains(out, f) {
			out = append(out, f)
		}
	}
	for _, f := range inText {
		add(f)
		add(jsonEscaped(f, false))
		add(jsonEscaped(f, true))
		add(quoted(f))
	}
	return out
}

// jsonEscaped is s as a JSON string's content, without the quotes.
func jsonEscaped(s string, html bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	_ = enc.Encode(s)
	return unquote(strings.TrimSuffix(b.String(), "\n"))
}

// quoted is s Go-quoted (strconv.Quote, as %q and slog's text handler
// write it), without the quotes.
func quoted(s string) string { return unquote(strconv.Quote(s)) }

func unquote(q string) string { return strings.TrimSuffix(strings.TrimPrefix(q, `"`), `"`) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// standsAlone reports whether s[start:end] has no word byte on either side.
func standsAlone(s string, start, end int) bool {
	return (start == 0 || !wordByte(s[start-1])) && (end == len(s) || !wordByte(s[end]))
}

func wordByte(c byte) bool {
	return c == '_' || c >= 0x80 || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// Error returns err with every secret masked in its message (see String);
// the original error stays reachable with errors.Is/As. nil stays nil, and
// err is returned unchanged when its text holds no secret.
func Error(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := String(msg, secrets...)
	if clean == msg {
		return err
	}
	return &redacted{msg: clean, err: err}
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// Writer masks known secrets in everything written through it: a last line
// of defence behind the code's own care. slog writes one record per Write,
// so a secret is never split across writes.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
}

// NewWriter wraps w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Add registers secrets to mask from now on; empty ones are ignored.
func (r *Writer) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if s != "" && !contains(r.secrets, s) {
			r.secrets = append(r.secrets, s)
		}
	}
}

// Write writes p with every registered secret masked.
func (r *Writer) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.secrets) == 0 {
		return r.w.Write(p)
	}
	if _, err := io.WriteString(r.w, String(string(p), r.secrets...)); err != nil {
		return 0, err
	}
	return len(p), nil
}
