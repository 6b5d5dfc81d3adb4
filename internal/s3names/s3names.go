// Package s3names derives S3 bucket names (and MinIO access keys) from a
// kommons scope (Kubernetes namespace + Helm release) and a logical name, so
// that many modules and sandboxes share one object store without clashing.
//
// Every result is a valid S3 general-purpose bucket name: 3 to 63 bytes of
// [a-z0-9-] starting and ending with a letter or digit, no dots (so never an
// IP address and never a TLS problem with virtual-host addressing), none of
// the prefixes (xn--, sthree-, amzn-s3-demo-) or suffixes (-s3alias, --ol-s3,
// --x-s3, --table-s3) that AWS reserves.
//
// The algorithm uses only operations Helm's template functions reproduce
// byte for byte (lower, regexReplaceAll, regexMatch, sha256sum, trunc), so a
// chart can compute the same names. For namespace N, release R and logical
// name L:
//
//  1. full = N + "-" + R + "-" + L.
//  2. full is used as it is ("plain") when N and R match ^[a-z0-9]+$, L
//     matches ^[a-z0-9]+(-[a-z0-9]+)*$ (no leading, trailing or doubled
//     "-"), full is at most 63 bytes and does not start with a reserved
//     prefix nor end with a reserved suffix.
//  3. Otherwise the name is base + "--" + hash where hash is the first 8 hex
//     digits of sha256(len(N) ":" N ":" len(R) ":" R ":" len(L) ":" L) and
//     base is full lower-cased, every run of characters outside [a-z0-9]
//     replaced by one "-", leading "-" removed, prefixed with "k-" when it
//     starts with a reserved prefix, truncated to 53 bytes, trailing "-"
//     removed, and "k" when nothing is left.
//
// Plain names never contain "--" and hashed names always do, so the two sets
// cannot collide; N and R cannot contain "-" in a plain name, so a plain
// name splits back into exactly one (N, R, L). Two different inputs give the
// same hashed name only on a 32-bit hash collision of their full text.
package s3names

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/kommons/kommons/internal/scope"
)

// MaxLen is the S3 bucket name limit in bytes.
const MaxLen = 63

// MinLen is the S3 bucket name minimum in bytes.
const MinLen = 3

// HashLen is the number of hex digits of the hash suffix.
const HashLen = 8

// baseLen is the room left for the readable part of a hashed name.
const baseLen = MaxLen - 2 - HashLen

// ReservedPrefixes are bucket name prefixes AWS refuses.
var ReservedPrefixes = []string{"xn--", "sthree-", "amzn-s3-demo-"}

// ReservedSuffixes are bucket name suffixes AWS refuses.
var ReservedSuffixes = []string{"-s3alias", "--ol-s3", "--x-s3", "--table-s3", ".mrap"}

var (
	plainScopePart = regexp.MustCompile(`^[a-z0-9]+$`)
	plainLogical   = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	unsafeRun      = regexp.MustCompile(`[^a-z0-9]+`)
	leadingDash    = regexp.MustCompile(`^-+`)
	trailingDash   = regexp.MustCompile(`-+$`)
	validBucket    = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	ipLike         = regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`)
)

// ErrEmpty is returned when the namespace, release or logical name is empty
// (scope.ErrEmpty).
var ErrEmpty = scope.ErrEmpty

// Physical returns the bucket name (or access key) for logical name in the
// scope namespace/release. It fails only when one of the three is empty.
func Physical(namespace, release, logical string) (string, error) {
	if err := scope.RequireParts(namespace, release, logical); err != nil {
		return "", err
	}
	full := namespace + "-" + release + "-" + logical
	if IsPlain(namespace, release, logical) {
		return full, nil
	}
	base := unsafeRun.ReplaceAllString(strings.ToLower(full), "-")
	base = leadingDash.ReplaceAllString(base, "")
	if hasReservedPrefix(base) {
		base = "k-" + base
	}
	if len(base) > baseLen {
		base = base[:baseLen]
	}
	base = trailingDash.ReplaceAllString(base, "")
	if base == "" {
		base = "k"
	}
	return base + "--" + Hash(namespace, release, logical), nil
}

// IsPlain reports whether the physical name is the plain concatenation
// namespace-release-logical, without a hash suffix.
func IsPlain(namespace, release, logical string) bool {
	full := namespace + "-" + release + "-" + logical
	return plainScopePart.MatchString(namespace) && plainScopePart.MatchString(release) &&
		plainLogical.MatchString(logical) && len(full) <= MaxLen &&
		!hasReservedPrefix(full) && !hasReservedSuffix(full)
}

// Hash is the hash suffix of a hashed physical name: the first HashLen hex
// digits of SHA-256 over the length-prefixed original strings.
func Hash(namespace, release, logical string) string {
	in := fmt.Sprintf("%d:%s:%d:%s:%d:%s", len(namespace), namespace, len(release), release, len(logical), logical)
	sum := sha256.Sum256([]byte(in))
	return hex.EncodeToString(sum[:])[:HashLen]
}

// ValidBucketName checks name against the S3 general-purpose bucket naming
// rules (the result of Physical always passes).
func ValidBucketName(name string) error {
	switch {
	case len(name) < MinLen || len(name) > MaxLen:
		return fmt.Errorf("bucket name %q: %d bytes, want %d to %d", name, len(name), MinLen, MaxLen)
	case !validBucket.MatchString(name):
		return fmt.Errorf("bucket name %q: want [a-z0-9.-] starting and ending with a letter or digit", name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("bucket name %q: contains \"..\"", name)
	case ipLike.MatchString(name):
		return fmt.Errorf("bucket name %q: looks like an IP address", name)
	case hasReservedPrefix(name):
		return fmt.Errorf("bucket name %q: reserved prefix", name)
	case hasReservedSuffix(name):
		return fmt.Errorf("bucket name %q: reserved suffix", name)
	}
	return nil
}

func hasReservedPrefix(s string) bool {
	for _, p := range ReservedPrefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func hasReservedSuffix(s string) bool {
	for _, p := range ReservedSuffixes {
		if strings.HasSuffix(s, p) {
			return true
		}
	}
	return false
}
