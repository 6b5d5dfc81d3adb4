// Package gobuild builds a Go command for the tests of a package once per
// test binary, into a temporary directory removed when the tests are done.
package gobuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Binary is one command built on first use.
type Binary struct {
	pkg, name string
	env       []string

	once sync.Once
	dir  string
	path string
	err  error
}

// New describes the command in package pkg (a path as `go build` takes it,
// e.g. "." in the command's own tests) named name, built with extra
// environment env (e.g. "CGO_ENABLED=0").
func New(pkg, name string, env ...string) *Binary {
	return &Binary{pkg: pkg, name: name, env: env}
}

// Path builds the command on first use and returns its path; a failed
// build fails t.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "kommons-"+b.name+"-test-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, b.name)
		cmd := exec.Command("go", "build", "-o", b.path, b.pkg)
		cmd.Env = append(os.Environ(), b.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Remove deletes what Path built; call it from TestMain once the tests are
// done.
func (b *Binary) Remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}
