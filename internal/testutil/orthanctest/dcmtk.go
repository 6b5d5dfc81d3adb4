package orthanctest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// RequireDcmtk fails (CI=true, or KOMMONS_E2E=1 as make test sets) or
// skips the test unless DCMTK's network tools (echoscu, storescu, findscu;
// Debian package dcmtk, installed by test/cluster/deps.sh) are on PATH.
func RequireDcmtk(t testing.TB) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"echoscu", "storescu", "findscu"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	toolcache.Missing(t, "DCMTK", fmt.Errorf("%s not found (apt-get install dcmtk)", strings.Join(missing, ", ")))
}

// DcmtkResult is the outcome of one DCMTK command.
type DcmtkResult struct {
	// Args are the command line (for messages).
	Args []string
	// Err is nil when the command exited 0.
	Err error
	// Output is stdout and stderr together.
	Output string
}

// OK reports whether the command exited 0.
func (r DcmtkResult) OK() bool { return r.Err == nil }

func (r DcmtkResult) String() string {
	return fmt.Sprintf("%s: %v\n%s", strings.Join(r.Args, " "), r.Err, r.Output)
}

// Dcmtk runs a DCMTK tool (echoscu, storescu, findscu...) with args, bounded by 2 minutes.
func Dcmtk(t testing.TB, tool string, args ...string) DcmtkResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return DcmtkResult{Args: append([]string{tool}, args...), Err: err, Output: out.String()}
}

var dumpValue = regexp.MustCompile(`\(([0-9a-fA-F]{4}),([0-9a-fA-F]{4})\) [A-Z]{2} \[([^\]]*)\]`)

// DumpValues returns the values of tag ("0020,000d") in a DCMTK dataset
// dump (findscu's responses), in order.
func DumpValues(dump, tag string) []string {
	var out []string
	for _, m := range dumpValue.FindAllStringSubmatch(dump, -1) {
		if strings.EqualFold(m[1]+","+m[2], tag) {
			out = append(out, strings.TrimRight(m[3], "\x00 "))
		}
	}
	return out
}
