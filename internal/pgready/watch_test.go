package pgready

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWatchGateMutesAWatchThatWokeForNothing(t *testing.T) {
	var g watchGate
	require.True(t, g.allow(LevelNone, false), "first pause: watch allowed")
	require.True(t, g.allow(LevelNone, false), "timer ended the pause: still allowed")
	require.False(t, g.allow(LevelNone, true), "woken, but the attempt got no further: muted")
	require.False(t, g.allow(LevelNone, false), "stays muted at the same level")
	require.True(t, g.allow(LevelTCP, false), "a new level unmutes")
	require.True(t, g.allow(LevelAuth, true), "woken and progressed: allowed")
}
