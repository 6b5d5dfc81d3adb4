// Package imagefs builds container image layers from files held in memory,
// without Docker: a deterministic tar (fixed modification time, root owner,
// PAX headers, entries in the order given, missing parent directories added)
// compressed with gzip carrying no name or time. The test harness's node
// images (internal/testutil/nodeimages) and the release's kommons-tools image
// (internal/release) are both made of such layers.
package imagefs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Entry is one file, directory or symbolic link of a layer.
type Entry struct {
	Name string // path in the image, without the leading "/"
	Mode int64
	Dir  bool
	Link string // target of a symbolic link
	Data []byte
}

// File is a regular file.
func File(name string, mode int64, data []byte) Entry {
	return Entry{Name: name, Mode: mode, Data: data}
}

// Dir is a directory.
func Dir(name string, mode int64) Entry { return Entry{Name: name, Mode: mode, Dir: true} }

// Symlink is a symbolic link to target.
func Symlink(name, target string) Entry { return Entry{Name: name, Mode: 0o777, Link: target} }

// Options tune a layer; the zero value is the modification time 0 (1970)
// and gzip.BestSpeed.
type Options struct {
	ModTime   time.Time       // every entry's modification time
	GzipLevel int             // 0: gzip.BestSpeed
	MediaType types.MediaType // "": go-containerregistry's default (Docker's layer type)
}

// Tar writes entries as a tar stream: missing parent directories are added
// as root-owned 0755 (what every base has), every header has the same
// modification time and root as owner.
func Tar(w io.Writer, entries []Entry, modTime time.Time) error {
	tw := tar.NewWriter(w)
	seen := map[string]bool{}
	header := func(h *tar.Header) error {
		h.ModTime, h.Format = modTime, tar.FormatPAX
		return tw.WriteHeader(h)
	}
	writeDir := func(name string, mode int64) error {
		seen[name] = true
		return header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode})
	}
	for _, e := range entries {
		var parents []string
		for d := path.Dir(e.Name); d != "." && d != "/"; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if !seen[d] {
				if err := writeDir(d, 0o755); err != nil {
					return fmt.Errorf("imagefs: %s: %w", d, err)
				}
			}
		}
		var err error
		switch {
		case e.Dir:
			err = writeDir(e.Name, e.Mode)
		case e.Link != "":
			err = header(&tar.Header{Typeflag: tar.TypeSymlink, Name: e.Name, Linkname: e.Link, Mode: e.Mode})
		default:
			if err = header(&tar.Header{Typeflag: tar.TypeReg, Name: e.Name, Mode: e.Mode, Size: int64(len(e.Data))}); err == nil {
				_, err = tw.Write(e.Data)
			}
		}
		if err != nil {
			return fmt.Errorf("imagefs: %s: %w", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("imagefs: close tar: %w", err)
	}
	return nil
}

// Gzip compresses data at level (0: gzip.BestSpeed) with an empty gzip
// header (no name, no time), so the output depends on data alone.
func Gzip(w io.Writer, data []byte, level int) error {
	if level == 0 {
		level = gzip.BestSpeed
	}
	zw, err := gzip.NewWriterLevel(w, level)
	if err != nil {
		return fmt.Errorf("imagefs: gzip: %w", err)
	}
	if _, err := zw.Write(data); err != nil {
		return fmt.Errorf("imagefs: gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("imagefs: gzip: %w", err)
	}
	return nil
}

// Layer builds a gzip-compressed layer from entries, in memory.
func Layer(entries []Entry, o Options) (v1.Layer, error) {
	modTime := time.Unix(0, 0)
	if !o.ModTime.IsZero() {
		modTime = o.ModTime
	}
	var raw, gz bytes.Buffer
	if err := Tar(&raw, entries, modTime.UTC()); err != nil {
		return nil, err
	}
	if err := Gzip(&gz, raw.Bytes(), o.GzipLevel); err != nil {
		return nil, err
	}
	data := gz.Bytes()
	var opts []tarball.LayerOption
	if o.MediaType != "" {
		opts = append(opts, tarball.WithMediaType(o.MediaType))
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, opts...)
}

// NonrootAccounts returns /etc/passwd and /etc/group holding root and one
// user (home /tmp, no login shell) whose uid and gid are both id.
func NonrootAccounts(user string, id int) (passwd, group []byte) {
	passwd = fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/tmp:/sbin/nologin\n", user, id, id, user)
	group = fmt.Appendf(nil, "root:x:0:\n%s:x:%d:\n", user, id)
	return passwd, group
}
