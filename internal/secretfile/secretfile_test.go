package secretfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/badsecret"
)

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestReadTrimsOneTrailingNewline(t *testing.T) {
	for content, want := range map[string]string{
		"pw":         "pw",
		"pw\n":       "pw",
		"pw\r\n":     "pw",
		"pw\n\n":     "pw\n",
		" pw \n":     " pw ",
		"two\nlines": "two\nlines",
	} {
		got, err := Read(write(t, content))
		require.NoError(t, err, "%q", content)
		require.Equal(t, want, got, "%q", content)
	}
}

func TestReadRefusesEmptyAndMissing(t *testing.T) {
	for _, content := range []string{"", "\n", "\r\n"} {
		p := write(t, content)
		_, err := Read(p)
		require.EqualError(t, err, p+": empty")
	}
	p := filepath.Join(t.TempDir(), "missing")
	_, err := Read(p)
	require.EqualError(t, err, p+": no such file or directory")
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestReadSizeLimit(t *testing.T) {
	exact := strings.Repeat("k", MaxSize)
	got, err := Read(write(t, exact))
	require.NoError(t, err)
	require.Equal(t, exact, got)

	p := write(t, exact+"k\n")
	_, err = Read(p)
	require.EqualError(t, err, p+": larger than 64 KiB")
	require.ErrorIs(t, err, ErrTooLarge)
}

// TestReadRefusesNonRegularFiles: devices, FIFOs, directories and files
// over MaxSize are refused without being read, at once (a FIFO without a
// writer would block a plain open forever; /dev/zero would be read until
// memory runs out), also behind a symbolic link.
func TestReadRefusesNonRegularFiles(t *testing.T) {
	link := filepath.Join(t.TempDir(), "link-to-zero")
	require.NoError(t, os.Symlink("/dev/zero", link))
	cases := append(badsecret.Cases(t), badsecret.Case{Name: "link", Path: link, Want: "not a regular file (a character device)"})
	for _, c := range cases {
		start := time.Now()
		_, err := Read(c.Path)
		require.EqualError(t, err, c.Path+": "+c.Want)
		require.True(t, errors.Is(err, ErrNotRegular) || errors.Is(err, ErrTooLarge))
		require.Less(t, time.Since(start), 2*time.Second)
	}
}

// TestReadFollowsSymlinks: Kubernetes Secret volumes are symbolic links
// (key -> ..data/key).
func TestReadFollowsSymlinks(t *testing.T) {
	target := write(t, "from-a-secret-volume\n")
	link := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.Symlink(target, link))
	got, err := Read(link)
	require.NoError(t, err)
	require.Equal(t, "from-a-secret-volume", got)
}
