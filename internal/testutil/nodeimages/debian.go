package nodeimages

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The Debian root filesystem shared by the postgres and orthanc images.
const debianSuite = "bookworm"

// debianPackages are debootstrap's --include list.
var debianPackages = []string{
	"ca-certificates", "postgresql", "orthanc", "orthanc-postgresql", "python3",
	// debootstrap resolves no virtual packages: orthanc depends on
	// libboost-regex1.74.0-icu72, which libboost-regex1.74.0 provides.
	"libboost-regex1.74.0",
}

// debianRoot describes one Debian root filesystem an image layer is built
// from: what debootstrap installs, and what is checked and changed after.
type debianRoot struct {
	suite    string   // Debian suite, e.g. bookworm
	packages []string // debootstrap's --include list
	// variant tells roots of the same suite and packages apart in the cache
	// key; empty for the shared bookworm root (its key predates variants).
	variant   string
	verify    func(rootfs string) (string, error) // checks, returns versions for the log
	customize func(rootfs string) error
}

// bookwormRoot is the root filesystem the postgres and orthanc images share.
var bookwormRoot = debianRoot{suite: debianSuite, packages: debianPackages, verify: verifyDebian, customize: customizeDebian}

// debianBase is the packed root filesystem: one gzip-compressed layer.
type debianBase struct {
	key   string   // content key of the inputs
	path  string   // layer file (.tar.gz) in the cache
	layer v1.Layer // loaded on first use (digesting it takes seconds)
}

// debianBase returns the cached layer of the shared bookworm root, building
// it (debootstrap) when missing.
func (b *builder) debianBase() (*debianBase, error) { return b.debianBaseOf(bookwormRoot) }

// debianBaseOf returns the cached layer file of r, building it
// (debootstrap) when missing.
func (b *builder) debianBaseOf(r debianRoot) (*debianBase, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00debian\x00%s\x00%s\x00%s\x00", builderVersion, r.suite, runtime.GOARCH, strings.Join(r.packages, ","))
	if r.variant != "" {
		fmt.Fprintf(h, "variant %s\x00", r.variant)
	}
	key := hex.EncodeToString(h.Sum(nil))
	if base := b.debian[key]; base != nil {
		return base, nil
	}
	base := &debianBase{key: key, path: filepath.Join(b.dir, "debian-"+r.suite+"-"+key[:16]+".tar.gz")}
	if _, err := os.Stat(base.path); err != nil {
		if err := b.buildDebian(r, base.path); err != nil {
			return nil, fmt.Errorf("debian %s root filesystem: %w", r.suite, err)
		}
	} else {
		touch(base.path)
	}
	if b.debian == nil {
		b.debian = map[string]*debianBase{}
	}
	b.debian[key] = base
	return base, nil
}

// loadLayer reads the layer file (digest and diff ID) once.
func (b *builder) loadLayer(base *debianBase) (v1.Layer, error) {
	if base.layer != nil {
		return base.layer, nil
	}
	start := time.Now()
	layer, err := tarball.LayerFromFile(base.path)
	if err != nil {
		return nil, fmt.Errorf("debian layer %s: %w", base.path, err)
	}
	d, err := layer.Digest()
	if err != nil {
		return nil, fmt.Errorf("debian layer %s: %w", base.path, err)
	}
	b.logf("nodeimages: debian layer %s (%s) read in %.1fs", filepath.Base(base.path), d, time.Since(start).Seconds())
	base.layer = layer
	return layer, nil
}

// buildDebian runs debootstrap for r and packs the cleaned root filesystem
// into the layer file out. Every suite comes from the host's mirror of
// bookworm (debianMirror): one archive serves them all.
//
// Why two stages: debootstrap --foreign only downloads and unpacks; then
// /usr/sbin/policy-rc.d (exit 101, "action forbidden") is put in place so
// that no maintainer script starts a service (postgresql-common's postinst
// creates and would start a cluster, orthanc's would start Orthanc), and
// the second stage (which configures the packages) runs in private mount,
// PID and network namespaces (unshare): a daemon a postinst starts anyway
// can neither bind a host port nor outlive the namespace, and the /proc
// and /sys mounts of the second stage never appear on the host. It needs
// no network: the first stage downloaded every package.
func (b *builder) buildDebian(r debianRoot, out string) error {
	if os.Geteuid() != 0 {
		return errors.New("debootstrap needs root")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("debootstrap is not installed (apt-get install debootstrap): %w", err)
	}
	start := time.Now()
	work, err := os.MkdirTemp(b.dir, "debian-build-")
	if err != nil {
		return err
	}
	defer b.removeWork(work)
	rootfs := filepath.Join(work, "rootfs")
	logPath := filepath.Join(work, "debootstrap.log")
	mirror := debianMirror()

	b.logf("nodeimages: debootstrap %s from %s (first stage: download)", r.suite, mirror)
	if err := b.run(logPath, "debootstrap", "--foreign", "--variant=minbase",
		"--include="+strings.Join(r.packages, ","), r.suite, rootfs, mirror); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "usr/sbin/policy-rc.d"), []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return fmt.Errorf("policy-rc.d: %w", err)
	}
	b.logf("nodeimages: debootstrap second stage (configure, private namespaces) after %.0fs", time.Since(start).Seconds())
	if err := b.run(logPath, "unshare", "--mount", "--pid", "--net", "--fork", "--kill-child",
		"chroot", rootfs, "/debootstrap/debootstrap", "--second-stage"); err != nil {
		if tail := logTail(filepath.Join(rootfs, "debootstrap", "debootstrap.log"), 30); tail != "" {
			err = fmt.Errorf("%w\ndebootstrap.log:\n%s", err, tail)
		}
		return err
	}
	versions, err := r.verify(rootfs)
	if err != nil {
		return err
	}
	if err := r.customize(rootfs); err != nil {
		return err
	}
	if err := cleanDebian(rootfs); err != nil {
		return err
	}
	packStart := time.Now()
	if err := packRootfs(rootfs, out); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	b.logf("nodeimages: debian %s root filesystem (%s) built in %.0fs (packed in %.0fs, %d MiB compressed)",
		r.suite, versions, time.Since(start).Seconds(), time.Since(packStart).Seconds(), st.Size()>>20)
	return nil
}

// run runs a command, its output appended to logPath; a failure carries
// the log's tail. The command dies with the test binary (Pdeathsig).
func (b *builder) run(logPath string, name string, args ...string) error {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	fmt.Fprintf(lf, "+ %s %s\n", name, strings.Join(args, " "))
	cmd := exec.CommandContext(b.ctx, name, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := runLocked(cmd); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, logTail(logPath, 20))
	}
	return nil
}

// runLocked runs cmd from a goroutine locked to its OS thread. Pdeathsig
// fires when the thread that started the child exits (not the process), and
// Go ends a thread whenever a goroutine locked to it returns (namespace
// code does that); a thread locked here lives, and serves nothing else,
// until cmd has ended.
func runLocked(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		errc <- cmd.Run()
	}()
	return <-errc
}

// removeWork deletes the build directory unless something is still mounted
// below it (it never should be: every mount lived in a private namespace).
func (b *builder) removeWork(work string) {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil || bytes.Contains(mounts, []byte(" "+work+"/")) {
		b.logf("nodeimages: leaving %s in place: mounts below it, or mountinfo unreadable (%v)", work, err)
		return
	}
	if err := os.RemoveAll(work); err != nil {
		b.logf("nodeimages: remove %s: %v", work, err)
	}
}

func logTail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// debianMirror is $KOMMONS_DEBIAN_MIRROR, else the first apt source of the
// host that serves the suite itself (not -security or -updates), else
// deb.debian.org.
func debianMirror() string {
	if m := os.Getenv("KOMMONS_DEBIAN_MIRROR"); m != "" {
		return m
	}
	files := []string{"/etc/apt/sources.list"}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	files = append(files, more...)
	deb822, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append(files, deb822...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := mirrorIn(string(data), strings.HasSuffix(f, ".sources")); m != "" {
			return m
		}
	}
	return "http://deb.debian.org/debian"
}

// mirrorIn finds a URI serving debianSuite in one sources file (one-line
// or deb822 format).
func mirrorIn(data string, deb822 bool) string {
	if !deb822 {
		for _, line := range strings.Split(data, "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || f[0] != "deb" {
				continue
			}
			f = f[1:]
			if strings.HasPrefix(f[0], "[") { // options
				for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
					f = f[1:]
				}
				if len(f) > 0 {
					f = f[1:]
				}
			}
			if len(f) >= 2 && f[1] == debianSuite && strings.HasPrefix(f[0], "http") {
				return f[0]
			}
		}
		return ""
	}
	for _, stanza := range strings.Split(data, "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, " ") {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if !strings.Contains(" "+fields["types"]+" ", " deb ") || strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		if !strings.Contains(" "+fields["suites"]+" ", " "+debianSuite+" ") {
			continue
		}
		for _, uri := range strings.Fields(fields["uris"]) {
			if strings.HasPrefix(uri, "http") {
				return uri
			}
		}
	}
	return ""
}

// verifyDebian checks the facts the charts' test values rely on and returns
// the package versions for the log.
func verifyDebian(rootfs string) (string, error) {
	for _, p := range []string{
		OrthancCommand,
		OrthancPluginDir + "/libOrthancPostgreSQLIndex.so",
		OrthancPluginDir + "/libOrthancPostgreSQLStorage.so",
		"/usr/lib/postgresql/15/bin/postgres",
		"/usr/lib/postgresql/15/bin/initdb",
		"/usr/lib/postgresql/15/bin/pg_ctl",
		"/usr/lib/postgresql/15/bin/pg_isready",
		"/usr/lib/postgresql/15/bin/psql",
		"/usr/bin/python3",
		"/usr/bin/setpriv",
		"/bin/bash",
		"/etc/ssl/certs/ca-certificates.crt",
	} {
		// Stat inside the root: plugin links are relative, so they resolve there.
		if _, err := os.Stat(filepath.Join(rootfs, p)); err != nil {
			return "", fmt.Errorf("debian root filesystem lacks %s: %w", p, err)
		}
	}
	status, err := dpkgVersions(filepath.Join(rootfs, "var/lib/dpkg/status"))
	if err != nil {
		return "", err
	}
	want := map[string]string{"orthanc": "1.10.", "postgresql-15": "15.", "orthanc-postgresql": "4."}
	var got []string
	for _, pkg := range []string{"postgresql-15", "orthanc", "orthanc-postgresql", "python3"} {
		v, ok := status[pkg]
		if !ok {
			return "", fmt.Errorf("debian root filesystem: package %s is not installed", pkg)
		}
		if prefix := want[pkg]; prefix != "" && !strings.HasPrefix(v, prefix) {
			return "", fmt.Errorf("debian root filesystem: %s %s, want %s*", pkg, v, prefix)
		}
		got = append(got, pkg+" "+v)
	}
	return strings.Join(got, ", "), nil
}

// dpkgVersions reads the installed packages' versions from dpkg's status.
func dpkgVersions(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dpkg status: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	var pkg, version string
	installed := false
	flush := func() {
		if pkg != "" && installed {
			out[pkg] = version
		}
		pkg, version, installed = "", "", false
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(line, "Package: "):
			pkg = strings.TrimPrefix(line, "Package: ")
		case strings.HasPrefix(line, "Version: "):
			version = strings.TrimPrefix(line, "Version: ")
		case strings.HasPrefix(line, "Status: "):
			installed = strings.HasSuffix(line, " installed")
		}
	}
	flush()
	return out, sc.Err()
}

// customizeDebian makes the root filesystem what the images need:
//   - the postgres user and group become 999:999 (the official image's ids,
//     which charts/commons runs as; initdb needs a passwd entry for its uid),
//     and every file they owned follows;
//   - the cluster postgresql-common created at install (15/main) goes: the
//     image initializes its own in PGDATA;
//   - host details debootstrap copied (resolv.conf, hostname) are reset
//     (the container runtime mounts its own), policy-rc.d goes.
func customizeDebian(rootfs string) error { return preparePostgresRoot(rootfs, PostgresUID, 15) }

// preparePostgresRoot is customizeDebian for a root filesystem with
// Debian's PostgreSQL of the given major version, its postgres user and
// group getting id.
func preparePostgresRoot(rootfs string, id, major int) error {
	if err := rewriteIDs(rootfs, "postgres", id, id); err != nil {
		return err
	}
	m := strconv.Itoa(major)
	for _, p := range []string{"etc/postgresql/" + m + "/main", "var/lib/postgresql/" + m} {
		if err := os.RemoveAll(filepath.Join(rootfs, p)); err != nil {
			return err
		}
	}
	return resetHostFiles(rootfs)
}

// resetHostFiles drops policy-rc.d and resets the host details debootstrap
// copied (resolv.conf, hostname, hosts): the container runtime mounts its
// own.
func resetHostFiles(rootfs string) error {
	if err := os.RemoveAll(filepath.Join(rootfs, "usr/sbin/policy-rc.d")); err != nil {
		return err
	}
	files := map[string]string{
		"etc/resolv.conf": "",
		"etc/hostname":    "localhost\n",
		"etc/hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
	}
	for p, content := range files {
		if err := os.WriteFile(filepath.Join(rootfs, p), []byte(content), 0o644); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(rootfs, p), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// rewriteIDs gives user (and its group of the same name) new ids in
// etc/passwd and etc/group, and re-owns every file that had the old ones.
func rewriteIDs(rootfs, user string, uid, gid int) error {
	passwdPath, groupPath := filepath.Join(rootfs, "etc/passwd"), filepath.Join(rootfs, "etc/group")
	passwd, err := os.ReadFile(passwdPath)
	if err != nil {
		return err
	}
	group, err := os.ReadFile(groupPath)
	if err != nil {
		return err
	}
	newPasswd, oldUID, err := rewriteEntry(string(passwd), user, 2, uid, func(f []string) { f[3] = strconv.Itoa(gid) })
	if err != nil {
		return fmt.Errorf("etc/passwd: %w", err)
	}
	newGroup, oldGID, err := rewriteEntry(string(group), user, 2, gid, nil)
	if err != nil {
		return fmt.Errorf("etc/group: %w", err)
	}
	if err := os.WriteFile(passwdPath, []byte(newPasswd), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(groupPath, []byte(newGroup), 0o644); err != nil {
		return err
	}
	return filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		if int(st.Uid) != oldUID && int(st.Gid) != oldGID {
			return nil
		}
		nu, ng := int(st.Uid), int(st.Gid)
		if nu == oldUID {
			nu = uid
		}
		if ng == oldGID {
			ng = gid
		}
		if err := os.Lchown(p, nu, ng); err != nil {
			return err
		}
		// chown clears set-user/group-ID bits: restore the mode.
		if info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 && info.Mode()&fs.ModeSymlink == 0 {
			return os.Chmod(p, info.Mode())
		}
		return nil
	})
}

// rewriteEntry sets field idField (the id) of the line named name in a
// passwd or group file; it refuses an id another entry already has.
func rewriteEntry(data, name string, idField, id int, more func([]string)) (string, int, error) {
	lines := strings.Split(data, "\n")
	old := -1
	for i, line := range lines {
		f := strings.Split(line, ":")
		if len(f) <= idField {
			continue
		}
		if f[0] != name {
			if f[idField] == strconv.Itoa(id) {
				return "", 0, fmt.Errorf("id %d is taken by %s", id, f[0])
			}
			continue
		}
		var err error
		if old, err = strconv.Atoi(f[idField]); err != nil {
			return "", 0, fmt.Errorf("%s: id %q: %w", name, f[idField], err)
		}
		f[idField] = strconv.Itoa(id)
		if more != nil {
			more(f)
		}
		lines[i] = strings.Join(f, ":")
	}
	if old < 0 {
		return "", 0, fmt.Errorf("no entry %s", name)
	}
	return strings.Join(lines, "\n"), old, nil
}

// cleanDebian drops what an image never needs: downloaded packages and
// package lists, documentation (copyright files stay), manual pages,
// translations, locales other than C.utf8, logs and backups.
func cleanDebian(rootfs string) error {
	var remove []string
	globs := []string{
		"var/cache/apt/archives/*.deb", "var/cache/apt/archives/partial/*", "var/cache/apt/*.bin",
		"var/lib/apt/lists/*", "var/cache/debconf/*-old", "var/lib/dpkg/*-old",
		"usr/share/man/*", "usr/share/info/*", "usr/share/locale/*", "usr/lib/locale/*",
		"var/log/*.log", "var/log/apt/*", "run/adduser", "tmp/*",
	}
	keep := map[string]bool{
		"var/lib/apt/lists/partial": true, "var/lib/apt/lists/lock": true,
		"usr/share/locale/locale.alias": true, "usr/lib/locale/C.utf8": true,
	}
	for _, g := range globs {
		matches, err := filepath.Glob(filepath.Join(rootfs, g))
		if err != nil {
			return err
		}
		for _, m := range matches {
			rel, _ := filepath.Rel(rootfs, m)
			if !keep[rel] {
				remove = append(remove, m)
			}
		}
	}
	// Documentation: everything but copyright files.
	err := filepath.WalkDir(filepath.Join(rootfs, "usr/share/doc"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() != "copyright" && d.Type()&fs.ModeSymlink == 0 {
			remove = append(remove, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range remove {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("clean: %w", err)
		}
	}
	return nil
}

// packRootfs writes the root filesystem as one gzip-compressed layer:
// GNU tar (numeric owners, sorted names; /dev, /proc and /sys kept empty),
// compressed here, written atomically.
func packRootfs(rootfs, out string) error {
	tmp := fmt.Sprintf("%s.tmp-%d", out, os.Getpid())
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		f.Close()
		return err
	}
	cmd := exec.Command("tar", "--create", "--file=-", "--directory="+rootfs, "--numeric-owner", "--sort=name",
		"--anchored", "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", ".")
	cmd.Stdout = zw
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := runLocked(cmd); err != nil {
		f.Close()
		return fmt.Errorf("tar %s: %w: %s", rootfs, err, stderr.String())
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
