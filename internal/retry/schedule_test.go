package retry

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func TestScheduleWithoutJitterIsExponentialAndCapped(t *testing.T) {
	s, err := NewSchedule(Backoff{Initial: 100 * time.Millisecond, Multiplier: 1.5, Max: time.Second}, nil)
	require.NoError(t, err)
	want := []time.Duration{ms(100), ms(150), ms(225), ms(337.5), ms(506.25), ms(759.375), ms(1000), ms(1000)}
	for i, w := range want {
		require.Equal(t, w, s.Next(), "pause %d", i+1)
	}
	s.Reset()
	require.Equal(t, ms(100), s.Next(), "Reset restarts at the initial interval")
}

func TestScheduleSeededJitterIsReproducibleAndBounded(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Multiplier: 2, Max: 800 * time.Millisecond, Jitter: 0.5}
	run := func(seed uint64) []time.Duration {
		s, err := NewSchedule(b, rand.New(rand.NewPCG(seed, 0)))
		require.NoError(t, err)
		out := make([]time.Duration, 8)
		for i := range out {
			out[i] = s.Next()
		}
		return out
	}
	a, again, other := run(42), run(42), run(43)
	require.Equal(t, a, again, "same seed, same schedule")
	require.NotEqual(t, a, other, "different seed, different jitter")
	base := []time.Duration{ms(100), ms(200), ms(400), ms(800), ms(800), ms(800), ms(800), ms(800)}
	distinct := map[time.Duration]bool{}
	for i, d := range a {
		require.GreaterOrEqual(t, d, base[i]/2, "pause %d below base*(1-jitter)", i+1)
		require.LessOrEqual(t, d, base[i]*3/2, "pause %d above base*(1+jitter)", i+1)
		distinct[d] = true
	}
	require.Greater(t, len(distinct), 4, "jitter must vary the capped pauses")

	// The jitter is exactly base*(1-j+2j*r) with r from the injected source.
	r := rand.New(rand.NewPCG(42, 0))
	for i, d := range a {
		f := 0.5 + r.Float64()
		require.Equal(t, time.Duration(float64(base[i])*f), d, "pause %d", i+1)
	}
}

func TestBackoffValidate(t *testing.T) {
	ok := DefaultBackoff()
	require.NoError(t, ok.Validate())
	for name, b := range map[string]Backoff{
		"initial":    {Initial: 0, Multiplier: 1.5, Max: time.Second},
		"multiplier": {Initial: time.Millisecond, Multiplier: 0.5, Max: time.Second},
		"max":        {Initial: time.Second, Multiplier: 1.5, Max: time.Millisecond},
		"jitter":     {Initial: time.Millisecond, Multiplier: 1.5, Max: time.Second, Jitter: 1},
	} {
		err := b.Validate()
		require.Error(t, err, name)
		require.Contains(t, err.Error(), name, "the error names the field")
	}
}
