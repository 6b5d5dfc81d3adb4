package secretinit

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"strings"
)

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// GenerateValue returns a new random value for g from r (crypto/rand.Reader
// when nil): g.Length alphanumeric characters, or g.Bytes random bytes
// base64-encoded.
func GenerateValue(g Generate, r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	if g.Bytes > 0 {
		b := make([]byte, g.Bytes)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", fmt.Errorf("random bytes: %w", err)
		}
		return base64.StdEncoding.EncodeToString(b), nil
	}
	out := make([]byte, g.Length)
	max := big.NewInt(int64(len(alnum)))
	for i := range out {
		n, err := rand.Int(r, max)
		if err != nil {
			return "", fmt.Errorf("random characters: %w", err)
		}
		out[i] = alnum[n.Int64()]
	}
	return string(out), nil
}

// urlEscape escapes s for any part of a URL: everything but letters,
// digits and -_.~ is percent-encoded (spaces as %20).
func urlEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// resolveTemplates computes every template key of data from values (the
// other keys' final values): a template may use any key, including another
// template, in any order; a reference to a key that never resolves, or a
// cycle, is an error naming the template.
func resolveTemplates(data map[string]Source, values map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(values))
	for k, v := range values {
		out[k] = v
	}
	pending := []string{}
	for _, k := range sortedKeys(data) {
		if data[k].Kind() == KindTemplate {
			pending = append(pending, k)
		}
	}
	for len(pending) > 0 {
		var next []string
		var lastErr error
		for _, k := range pending {
			t, err := parseTemplate(k, *data[k].Template)
			if err != nil {
				return nil, fmt.Errorf("%s.template: %w", k, err)
			}
			var buf bytes.Buffer
			if err := t.Execute(&buf, out); err != nil {
				next, lastErr = append(next, k), fmt.Errorf("%s.template: %w", k, err)
				continue
			}
			out[k] = buf.String()
		}
		if len(next) == len(pending) {
			return nil, lastErr
		}
		pending = next
	}
	return out, nil
}
