package retry

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Backoff configures the pause between attempts: it starts at Initial, is
// multiplied by Multiplier after every failed attempt up to Max, and each
// pause is drawn uniformly from [p*(1-Jitter), p*(1+Jitter)] so that many
// pods started together do not retry in lock-step. As in cenkalti/backoff,
// Max caps the interval before jitter. The schedule restarts at Initial
// whenever an attempt gets further than the one before.
type Backoff struct {
	Initial    time.Duration
	Multiplier float64
	Max        time.Duration
	Jitter     float64
}

// DefaultBackoff is 50 ms growing by 1.5x to 1 s, with ±50 % jitter: the
// first attempts after a change (e.g. the server answering "starting up")
// come quickly, and a long wait attempts about once a second, like the
// wait_for_psql.py loop it replaces, spread out so that pods started
// together do not retry in lock-step.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 50 * time.Millisecond, Multiplier: 1.5, Max: time.Second, Jitter: 0.5}
}

// Validate reports the first invalid field.
func (b Backoff) Validate() error {
	switch {
	case b.Initial <= 0:
		return fmt.Errorf("initial interval %v: must be > 0", b.Initial)
	case b.Multiplier < 1:
		return fmt.Errorf("multiplier %v: must be >= 1", b.Multiplier)
	case b.Max < b.Initial:
		return fmt.Errorf("max interval %v: must be >= initial interval %v", b.Max, b.Initial)
	case b.Jitter < 0 || b.Jitter >= 1:
		return fmt.Errorf("jitter %v: must be in [0, 1)", b.Jitter)
	}
	return nil
}

// Schedule yields the pauses of a Backoff. The exponential growth and the
// cap come from cenkalti/backoff's ExponentialBackOff (with its own
// randomization off); the jitter is drawn from an injected random source so
// that a seeded source gives a reproducible schedule. Not safe for
// concurrent use.
type Schedule struct {
	exp    *backoff.ExponentialBackOff
	jitter float64
	rnd    *rand.Rand
}

// NewSchedule returns the schedule of b drawing jitter from rnd; a nil rnd
// uses a randomly seeded source.
func NewSchedule(b Backoff, rnd *rand.Rand) (*Schedule, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	if rnd == nil {
		rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	exp := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(b.Initial),
		backoff.WithMultiplier(b.Multiplier),
		backoff.WithMaxInterval(b.Max),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0), // the overall deadline is Wait's job
	)
	return &Schedule{exp: exp, jitter: b.Jitter, rnd: rnd}, nil
}

// Next returns the next pause.
func (s *Schedule) Next() time.Duration {
	d := s.exp.NextBackOff()
	if d == backoff.Stop { // unreachable with MaxElapsedTime 0; keep a sane value
		d = s.exp.MaxInterval
	}
	if s.jitter == 0 {
		return d
	}
	f := 1 - s.jitter + 2*s.jitter*s.rnd.Float64()
	return time.Duration(float64(d) * f)
}

// Reset restarts the schedule at the initial interval.
func (s *Schedule) Reset() { s.exp.Reset() }
