package pgprovision

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/kommons/kommons/internal/redact"
)

// SCRAMIterations is the PBKDF2 iteration count of verifiers pg-init
// computes: PostgreSQL's default (scram_iterations).
const SCRAMIterations = 4096

const scramSaltLen = 16

// SCRAMVerifier computes the SCRAM-SHA-256 verifier PostgreSQL stores for
// password, in its rolpassword format
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (RFC 5802/7677).
// Sent as the PASSWORD of CREATE/ALTER ROLE it is stored as is, so the
// plain password never reaches the server or its logs. password must be
// ASCII (see CheckPassword): PostgreSQL applies SASLprep only to non-ASCII text.
func SCRAMVerifier(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("scram: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

// NewSCRAMVerifier computes a verifier with a fresh random salt.
func NewSCRAMVerifier(password string) (string, error) {
	salt := make([]byte, scramSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("scram salt: %w", err)
	}
	return SCRAMVerifier(password, salt, SCRAMIterations)
}

// SCRAMMatches reports whether stored (a rolpassword value) is a
// SCRAM-SHA-256 verifier of password: it recomputes the keys with the
// stored salt and iteration count and compares in constant time. Any other
// format (md5, plain, empty) does not match.
func SCRAMMatches(stored, password string) bool {
	rest, ok := strings.CutPrefix(stored, "SCRAM-SHA-256$")
	if !ok {
		return false
	}
	iterSalt, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return false
	}
	iterText, saltText, ok := strings.Cut(iterSalt, ":")
	if !ok {
		return false
	}
	iterations, err := strconv.Atoi(iterText)
	if err != nil || iterations < 1 || iterations > 1<<24 {
		return false
	}
	salt, err := base64.StdEncoding.DecodeString(saltText)
	if err != nil {
		return false
	}
	want, err := SCRAMVerifier(password, salt, iterations)
	if err != nil {
		return false
	}
	wantKeys := want[strings.LastIndex(want, "$")+1:]
	return subtle.ConstantTimeCompare([]byte(wantKeys), []byte(keys)) == 1
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// CheckPassword refuses passwords pg-init cannot hash exactly as PostgreSQL
// and its clients do: empty ones and ones with non-ASCII or control
// characters (PostgreSQL normalises non-ASCII passwords with SASLprep); and
// passwords shorter than redact.MinSecretLen, which redaction could not mask
// safely. The error never contains the password, nor its length.
func CheckPassword(pw string) error {
	if pw == "" {
		return fmt.Errorf("empty password")
	}
	if len(pw) < redact.MinSecretLen {
		return fmt.Errorf("password is shorter than %d characters", redact.MinSecretLen)
	}
	for i := 0; i < len(pw); i++ {
		if pw[i] < 0x20 || pw[i] > 0x7e {
			return fmt.Errorf("password has a character outside printable ASCII at byte %d (pg-init computes SCRAM verifiers client-side and supports printable ASCII only)", i)
		}
	}
	return nil
}
