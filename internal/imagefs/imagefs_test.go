package imagefs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"testing"
	"time"
)

func TestLayerIsDeterministic(t *testing.T) {
	entries := []Entry{
		File("usr/local/bin/tool", 0o755, []byte("binary")),
		Dir("tmp", 0o1777),
		Symlink("bin", "usr/bin"),
	}
	mtime := time.Unix(1700000000, 0)
	digest := func() string {
		l, err := Layer(entries, Options{ModTime: mtime})
		if err != nil {
			t.Fatal(err)
		}
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	if a, b := digest(), digest(); a != b {
		t.Fatalf("two layers from the same entries differ: %s, %s", a, b)
	}

	l, err := Layer(entries, Options{ModTime: mtime})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header carries name %q, time %v", zr.Name, zr.ModTime)
	}
	var names []string
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(mtime) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d", h.Name, h.ModTime, h.Uid, h.Gid)
		}
	}
	want := []string{"usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/tool", "tmp/", "bin"}
	if len(names) != len(want) {
		t.Fatalf("entries %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("entries %v, want %v", names, want)
		}
	}
}

func TestZeroOptionsUseEpoch(t *testing.T) {
	l1, err := Layer([]Entry{File("a", 0o644, nil)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := Layer([]Entry{File("a", 0o644, nil)}, Options{ModTime: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := l1.Digest()
	d2, _ := l2.Digest()
	if d1 != d2 {
		t.Fatalf("zero Options is not the epoch: %s != %s", d1, d2)
	}
}

func TestNonrootAccounts(t *testing.T) {
	p, g := NonrootAccounts("nonroot", 65532)
	if !bytes.Contains(p, []byte("nonroot:x:65532:65532:")) || !bytes.Contains(g, []byte("nonroot:x:65532:")) {
		t.Fatalf("passwd %q group %q", p, g)
	}
}
