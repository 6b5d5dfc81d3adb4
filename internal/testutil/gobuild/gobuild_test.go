package gobuild

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestBuildsOnceAndRemoves(t *testing.T) {
	b := New("../../../cmd/wait-for-pg", "wait-for-pg", "CGO_ENABLED=0")
	p := b.Path(t)
	st, err := os.Stat(p)
	if err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("built binary %s: %v, mode %v", p, err, st.Mode())
	}
	out, err := exec.Command(p, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "wait-for-pg") {
		t.Fatalf("%s --help: %v\n%s", p, err, out)
	}
	if again := b.Path(t); again != p {
		t.Fatalf("second Path = %s, want the first build %s", again, p)
	}
	st2, _ := os.Stat(p)
	if !st2.ModTime().Equal(st.ModTime()) {
		t.Fatal("second Path rebuilt the binary")
	}
	b.Remove()
	if _, err := os.Stat(b.dir); !os.IsNotExist(err) {
		t.Fatalf("after Remove, %s: %v", b.dir, err)
	}
}
