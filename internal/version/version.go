// Package version holds the version stamped into every kommons binary at build time.
package version

// Version is set with -ldflags "-X github.com/kommons/kommons/internal/version.Version=...".
var Version = "dev"
