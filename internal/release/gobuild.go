package release

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Binaries maps a binary's name to its content.
type Binaries map[string][]byte

// Names returns the binaries' names, sorted.
func (b Binaries) Names() []string {
	names := make([]string, 0, len(b))
	for n := range b {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// VersionVar is the variable -ldflags -X stamps with the release version.
const VersionVar = "github.com/kommons/kommons/internal/version.Version"

// BuildBinaries builds every command of the module (./cmd/...) for p into
// dir and returns them: static (CGO_ENABLED=0), -trimpath, no VCS stamp, the
// version stamped, stripped and with an empty build ID, so that the same
// source and Go toolchain give the same bytes.
func BuildBinaries(ctx context.Context, repo, version string, p Platform, dir string) (Binaries, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	args := []string{"build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid= -X " + VersionVar + "=" + version,
		"-o", dir + string(filepath.Separator), "./cmd/..."}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch,
		"GOAMD64=v1", "GOARM64=v8.0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("release: go %s (%s): %w\n%s", strings.Join(args, " "), p, err, out)
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("release: build output: %w", err)
	}
	bins := Binaries{}
	for _, f := range files {
		if bins[f.Name()], err = os.ReadFile(filepath.Join(dir, f.Name())); err != nil {
			return nil, fmt.Errorf("release: build output: %w", err)
		}
	}
	if len(bins) == 0 {
		return nil, fmt.Errorf("release: go build ./cmd/... (%s) produced no binary", p)
	}
	return bins, nil
}
