// Package pgnames derives PostgreSQL physical names (databases, roles) from a
// kommons scope (Kubernetes namespace + Helm release) and a logical name.
//
// The algorithm is deliberately built only from operations that Helm's
// template functions reproduce byte for byte (strings.ToLower = sprig lower,
// Go regexp = sprig regexReplaceAll/regexMatch, SHA-256 hex = sha256sum, byte
// slicing = trunc), so charts/postgres-init/templates/_names.tpl computes the
// same names; pgnames_test.go renders that template with the Helm SDK and
// compares.
//
// Algorithm, for namespace N, release R and logical name L:
//
//  1. full = N + "_" + R + "_" + L.
//  2. full is used as it is ("plain") when N and R match ^[a-z0-9]+$, L
//     matches ^[a-z0-9]+(_[a-z0-9]+)*$ (no leading, trailing or doubled
//     "_"), full does not start with "pg_" (reserved for roles) and is at
//     most 63 bytes.
//  3. Otherwise the name is base + "__" + hash where hash is the first 16
//     hex digits (64 bits) of sha256(len(N) ":" N ":" len(R) ":" R ":"
//     len(L) ":" L) (an unambiguous encoding of the three original strings)
//     and base is full lower-cased, with every run of characters outside
//     [a-z0-9_] replaced by one "_", prefixed with "_" when it starts with
//     "pg_", truncated to 45 bytes and stripped of trailing "_".
//
// Plain names never contain "__" and hashed names always do, so the two sets
// cannot collide; two different inputs give the same hashed name only on a
// 64-bit hash collision of their full original text (a birthday collision
// needs about 2^32 names, a chosen second name about 2^64 hashes).
//
// Version 1 of the algorithm (every kommons release before the 64-bit hash)
// kept 8 hex digits (32 bits) and a 53-byte base: two Kubernetes-valid
// scopes such as team-a/web and team/a-web, with logical names sharing a
// long prefix, collide after about 2^16 names each.
// Legacy returns that name, so pg-init can recognise and rename the objects
// an earlier version created.
package pgnames

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/kommons/kommons/internal/scope"
)

// MaxLen is PostgreSQL's identifier limit (NAMEDATALEN-1) in bytes.
const MaxLen = 63

// HashLen is the number of hex digits of the hash suffix.
const HashLen = 16

// LegacyHashLen is the number of hex digits of version 1's hash suffix.
const LegacyHashLen = 8

var (
	plainScopePart = regexp.MustCompile(`^[a-z0-9]+$`)
	plainLogical   = regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)
	unsafeRun      = regexp.MustCompile(`[^a-z0-9_]+`)
	trailingUnder  = regexp.MustCompile(`_+$`)
)

// ErrEmpty is returned when the namespace, release or logical name is empty
// (scope.ErrEmpty).
var ErrEmpty = scope.ErrEmpty

// Physical returns the physical PostgreSQL name for logical name in the scope
// namespace/release. It fails only when one of the three is empty.
func Physical(namespace, release, logical string) (string, error) {
	if err := scope.RequireParts(namespace, release, logical); err != nil {
		return "", err
	}
	return physical(namespace, release, logical, HashLen), nil
}

// Legacy returns the physical name version 1 of the algorithm (8 hex
// digits of hash, 53-byte base) gave the same input, and whether it
// differs from Physical's: plain names, and empty inputs, are the same in
// both versions (ok false).
func Legacy(namespace, release, logical string) (name string, ok bool) {
	if namespace == "" || release == "" || logical == "" || IsPlain(namespace, release, logical) {
		return "", false
	}
	return physical(namespace, release, logical, LegacyHashLen), true
}

// physical is the name of a non-empty input with a hash of hashLen digits.
func physical(namespace, release, logical string, hashLen int) string {
	full := namespace + "_" + release + "_" + logical
	if IsPlain(namespace, release, logical) {
		return full
	}
	base := unsafeRun.ReplaceAllString(strings.ToLower(full), "_")
	if strings.HasPrefix(base, "pg_") {
		base = "_" + base
	}
	if baseLen := MaxLen - 2 - hashLen; len(base) > baseLen {
		base = base[:baseLen]
	}
	base = trailingUnder.ReplaceAllString(base, "")
	return base + "__" + digest(namespace, release, logical)[:hashLen]
}

// IsPlain reports whether the physical name is the plain concatenation
// namespace_release_logical, without a hash suffix.
func IsPlain(namespace, release, logical string) bool {
	full := namespace + "_" + release + "_" + logical
	return plainScopePart.MatchString(namespace) && plainScopePart.MatchString(release) &&
		plainLogical.MatchString(logical) && !strings.HasPrefix(full, "pg_") && len(full) <= MaxLen
}

// Hash is the hash suffix of a hashed physical name: the first HashLen hex
// digits of SHA-256 over the length-prefixed original strings.
func Hash(namespace, release, logical string) string {
	return digest(namespace, release, logical)[:HashLen]
}

// digest is the full hex SHA-256 over the length-prefixed original strings.
func digest(namespace, release, logical string) string {
	in := fmt.Sprintf("%d:%s:%d:%s:%d:%s", len(namespace), namespace, len(release), release, len(logical), logical)
	sum := sha256.Sum256([]byte(in))
	return hex.EncodeToString(sum[:])
}
