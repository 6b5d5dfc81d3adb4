// Package version holds the version stamped into every kommons binary at build time.
package version

import "runtime/debug"

// Version is set with -ldflags "-X github.com/kommons/kommons/internal/version.Version=..."
// (make build, make release, the image build).
var Version = "dev"

// String is the version a binary reports: the stamped Version, else the
// module version `go install ...@vX.Y.Z` records, else "dev".
func String() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}
