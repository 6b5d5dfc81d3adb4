package release

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/kommons/kommons/internal/imagefs"
)

// ArchiveName is the binary archive's file name of version for p.
func ArchiveName(version string, p Platform) string {
	return fmt.Sprintf("kommons_%s_%s_%s.tar.gz", version, p.OS, p.Arch)
}

// WriteArchive writes a deterministic .tar.gz at path: the binaries (0755)
// and docs (0644) under the directory top/, sorted by name, every entry owned
// by root with modification time mtime, gzip without name or time.
func WriteArchive(path, top string, bins Binaries, docs map[string][]byte, mtime time.Time) error {
	var entries []imagefs.Entry
	for _, n := range bins.Names() {
		entries = append(entries, imagefs.File(top+"/"+n, 0o755, bins[n]))
	}
	for n, data := range docs {
		entries = append(entries, imagefs.File(top+"/"+n, 0o644, data))
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	return writeTarGz(path, entries, mtime)
}

// writeTarGz writes entries as a deterministic .tar.gz at path: modification
// time mtime, root owner, gzip (best compression) without name or time.
func writeTarGz(path string, entries []imagefs.Entry, mtime time.Time) error {
	var raw, gz bytes.Buffer
	if err := imagefs.Tar(&raw, entries, mtime.UTC()); err != nil {
		return fmt.Errorf("release: %s: %w", path, err)
	}
	if err := imagefs.Gzip(&gz, raw.Bytes(), gzip.BestCompression); err != nil {
		return fmt.Errorf("release: %s: %w", path, err)
	}
	if err := os.WriteFile(path, gz.Bytes(), 0o644); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}
