// Package secretfile reads a secret (a password or key) from a file, such as
// a mounted Kubernetes Secret, for every kommons binary: pg-init's
// --admin-password-file, bootstrap-provisioner --password-file and spec
// passwordFile, wait-for-pg's --password-file, and s3-init's
// --access-key-file, --secret-key-file and spec secretKeyFile.
//
// Read refuses anything but a regular file (a FIFO, a device such as
// /dev/zero, a directory, a socket) and files larger than MaxSize, without
// reading them: it checks the path with stat (following symbolic links, as
// Kubernetes Secret volumes use them), then opens it with O_NONBLOCK, checks
// the open file again with fstat and reads at most MaxSize+1 bytes. So a
// FIFO never blocks (and SIGTERM keeps working), /dev/zero never exhausts
// memory, and a file swapped between the checks is caught. Errors read
// "PATH: reason" and never quote the content; callers prefix the flag or
// spec field ("--password-file /dev/zero: not a regular file (a character
// device)").
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// MaxSize is the largest secret file Read accepts, in bytes (64 KiB):
// far above any password or key, small enough to read into memory.
const MaxSize = 64 << 10

// Read returns the content of the regular file path with one trailing
// newline ("\n" or "\r\n") removed. An empty secret is an error.
func Read(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", pathError(path, err)
	}
	if err := check(path, fi); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return "", pathError(path, err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return "", pathError(path, err)
	}
	if err := check(path, fi); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return "", pathError(path, err)
	}
	if len(b) > MaxSize {
		return "", tooLarge(path)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("%s: empty", path)
	}
	return s, nil
}

// ErrNotRegular and ErrTooLarge classify Read's refusals (errors.Is).
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = fmt.Errorf("larger than %d KiB", MaxSize>>10)
)

func check(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, kind(fi.Mode()))
	}
	if fi.Size() > MaxSize {
		return tooLarge(path)
	}
	return nil
}

// pathError renders err as "PATH: reason" (the *fs.PathError's operation
// dropped), still matching errors.Is(err, fs.ErrNotExist) and the like.
func pathError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s: %w", path, err)
}

func tooLarge(path string) error { return fmt.Errorf("%s: %w", path, ErrTooLarge) }

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	default:
		return "mode " + m.String()
	}
}
