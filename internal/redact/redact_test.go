package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// realistic is a generated password with the characters that encode
// differently in URLs, JSON and Go quoting.
const realistic = `S3cret'"; --/p@ss w&rd<>\z9`

func TestEveryEncodingIsMasked(t *testing.T) {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("app", realistic), Host: "db:5432", Path: "/app",
		RawQuery: url.Values{"password": {realistic}}.Encode()}
	jsonPlain := new(bytes.Buffer)
	enc := json.NewEncoder(jsonPlain)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(map[string]string{"error": "password " + realistic}))
	jsonHTML, err := json.Marshal(map[string]string{"error": "password " + realistic})
	require.NoError(t, err)
	for name, text := range map[string]string{
		"raw":         "password " + realistic + " rejected",
		"query":       "?password=" + url.QueryEscape(realistic) + "&x=1",
		"path":        "/" + url.PathEscape(realistic) + "/",
		"url":         u.String(),
		"json":        jsonPlain.String(),
		"json html":   string(jsonHTML),
		"go quoted":   "error=" + strconv.Quote("password "+realistic),
		"twice":       realistic + realistic,
		"inside word": "x" + realistic + "y",
	} {
		t.Run(name, func(t *testing.T) {
			got := String(text, realistic)
			require.NotEqual(t, text, got)
			require.Contains(t, got, Mask)
			for _, f := range forms(realistic) {
				require.NotContains(t, got, f)
			}
			// No fragment longer than a few bytes survives either.
			require.NotContains(t, got, "S3cret")
			require.NotContains(t, got, "w&rd")
		})
	}
}

func TestSlogOutputIsMasked(t *testing.T) {
	for name, h := range map[string]func(*Writer) slog.Handler{
		"json": func(w *Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
		"text": func(w *Writer) slog.Handler { return slog.NewTextHandler(w, nil) },
	} {
		var out bytes.Buffer
		w := NewWriter(&out)
		w.Add(realistic, "")
		slog.New(h(w)).Error("connect failed", "error", fmt.Sprintf("password %q for postgres://app:%s@db rejected", realistic, url.QueryEscape(realistic)))
		require.Contains(t, out.String(), "connect failed", name)
		require.NotContains(t, out.String(), "S3cret", name)
	}
}

// TestTextWithoutTheSecretIsNeverAltered: redaction changes nothing in text
// that does not contain the secret, whatever the secret's length.
func TestTextWithoutTheSecretIsNeverAltered(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	alphabet := "abcdefghijklmnopqrstuvwxyzABC0123456789 \"'=:@/%&<>\\-_.,{}[]\n"
	random := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.Intn(len(alphabet))]
		}
		return string(b)
	}
	secrets := []string{realistic, "a", "5", "pw", "s3cr/t", "p@ss w/rd", random(12), random(20)}
	for i := 0; i < 2000; i++ {
		text := random(rng.Intn(200))
		for _, sec := range secrets {
			has := false
			for _, f := range forms(sec) {
				has = has || strings.Contains(text, f)
			}
			if !has {
				require.Equal(t, text, String(text, sec), "secret %q", sec)
			}
		}
	}
}

// TestShortSecretsAreMaskedOnlyWhereTheyStandAlone: a one-character password
// no longer rewrites that character everywhere (which also revealed it).
func TestShortSecretsAreMaskedOnlyWhereTheyStandAlone(t *testing.T) {
	line := `{"level":"INFO","msg":"waiting for PostgreSQL","error":"failed to connect to user=app database=app: connection refused"}`
	require.Equal(t, line, String(line, "a"))
	require.Equal(t, line, String(line, "app"[:2]))
	require.Equal(t, `password "xxxxx" rejected, url postgres://u:xxxxx@h, key=xxxxx`,
		String(`password "a" rejected, url postgres://u:a@h, key=a`, "a"))
	require.Equal(t, "a xxxxx b xxxxx", String("a s3cr/t b s3cr%2Ft", "s3cr/t"))
	// From MinSecretLen on, a secret is masked wherever it occurs.
	require.Equal(t, "prefixxxxxxsuffix", String("prefix"+strings.Repeat("k", MinSecretLen)+"suffix", strings.Repeat("k", MinSecretLen)))
}

func TestOverlappingAndRepeatedMatches(t *testing.T) {
	sec := "abababababab" // 12: overlapping occurrences merge into one mask
	require.Equal(t, "[xxxxx]", String("["+sec+"abab]", sec))
	require.Equal(t, "xxxxx", String(Mask, Mask))
	require.Equal(t, "", String("", sec))
	require.Equal(t, "no secret", String("no secret"))
}

func TestError(t *testing.T) {
	require.NoError(t, Error(nil, "x"))
	base := errors.New(`password "p@ss w/rd" rejected, url postgres://u:p%40ss%20w%2Frd@h`)
	err := fmt.Errorf("connect: %w", base)
	red := Error(err, "p@ss w/rd", "")
	require.Equal(t, `connect: password "xxxxx" rejected, url postgres://u:xxxxx@h`, red.Error())
	require.ErrorIs(t, red, base, "the chain survives redaction")
	same := errors.New("nothing secret")
	require.Same(t, same, Error(same, "secret-not-present"))
}

// TestErrorKeepsAPostgreSQLError: a driver error echoing the password (as
// is and URL-escaped) is masked, and its *pgconn.PgError stays in the chain
// for SQLSTATE checks.
func TestErrorKeepsAPostgreSQLError(t *testing.T) {
	require.NoError(t, Error(nil, "x"))
	base := &pgconn.PgError{Code: "28P01", Message: `password "p@ss w/rd" rejected, url postgres://u:p%40ss%20w%2Frd@h`}
	err := fmt.Errorf("connect: %w", base)
	red := Error(err, "p@ss w/rd", "")
	require.NotContains(t, red.Error(), "p@ss w/rd")
	require.NotContains(t, red.Error(), "p%40ss")
	require.Contains(t, red.Error(), `password "xxxxx" rejected`)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(red, &pgErr), "the chain survives redaction")
	require.Equal(t, "28P01", pgErr.Code)
	same := errors.New("nothing secret")
	require.Same(t, same, Error(same, "secret-not-present"))
}

// TestErrorShortPasswordLeavesOtherTextAlone: a one-character password
// used to be masked in every word holding that character.
func TestErrorShortPasswordLeavesOtherTextAlone(t *testing.T) {
	err := errors.New("failed to connect to `user=app database=app`: connection refused")
	require.Same(t, err, Error(err, "a"))
	require.Equal(t, `password "xxxxx" rejected`, Error(errors.New(`password "a" rejected`), "a").Error())
}
