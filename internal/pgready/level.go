package pgready

import (
	"fmt"
	"strings"
)

// Level is how far a connection attempt got. Levels are ordered: reaching one
// implies every level before it.
type Level int

// The readiness levels, in the order they are checked.
const (
	// LevelNone: nothing reached yet (DNS failure, connection refused, no route).
	LevelNone Level = iota
	// LevelTCP: the port accepts TCP connections.
	LevelTCP
	// LevelAccepting: the server answers the startup packet and is not
	// refusing with 57P03 (starting up, shutting down, recovering).
	LevelAccepting
	// LevelAuth: the credentials were accepted.
	LevelAuth
	// LevelDatabase: the target database exists and the role may connect to it.
	LevelDatabase
	// LevelQuery: SELECT 1 succeeds, and every extra check (primary, required
	// tables, required privileges) passes.
	LevelQuery
)

var levelNames = []string{"none", "tcp", "accepting", "auth", "database", "query"}

// String returns the level's name as used by --level.
func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return fmt.Sprintf("level(%d)", int(l))
	}
	return levelNames[l]
}

// MarshalText makes levels render as names in JSON logs.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// Next is the level an attempt that reached l waits for.
func (l Level) Next() Level {
	if l >= LevelQuery {
		return LevelQuery
	}
	return l + 1
}

// ParseLevel parses a target level name: tcp, accepting, auth, database or query.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if i > 0 && strings.EqualFold(s, n) {
			return Level(i), nil
		}
	}
	return LevelNone, fmt.Errorf("unknown level %q: want tcp, accepting, auth, database or query", s)
}
