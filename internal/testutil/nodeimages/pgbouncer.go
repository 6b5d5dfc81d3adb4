package nodeimages

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The PgBouncer image of CloudNativePG's Pooler (BuildCNPG). What the
// operator expects of it (pkg/specs/pgbouncer and
// internal/cmd/manager/pgbouncer of v1.27.1):
//   - the pod runs as uid 998, gid 996 (its security context); the
//     pgbouncer container's command is /controller/manager pgbouncer run
//     (the instance manager the bootstrap-controller init container copies
//     from the operator image), which writes pgbouncer.ini, pg_hba.conf and
//     the TLS files into /controller/configs and starts /usr/bin/pgbouncer;
//   - it reaches PgBouncer's admin console over the Unix socket in
//     /controller/run as user pgbouncer with peer authentication
//     (`local pgbouncer pgbouncer peer`), so uid 998 must be named pgbouncer
//     in etc/passwd;
//   - PgBouncer needs TLS (client_tls_*, server_tls_sslmode verify-ca) and
//     the parameters the operator writes and allows (track_extra_parameters,
//     1.20; max_prepared_statements, 1.21).
const (
	// CNPGPgBouncerUID and CNPGPgBouncerGID are the ids the Pooler's pods
	// run as (CreatePodSecurityContext(..., 998, 996)), those of the
	// upstream image's pgbouncer user.
	CNPGPgBouncerUID = 998
	CNPGPgBouncerGID = 996
	// CNPGPgBouncerBinary is where the pooler's instance manager runs
	// PgBouncer from (Debian installs it in /usr/sbin: linked).
	CNPGPgBouncerBinary = "/usr/bin/pgbouncer"
	// CNPGPgBouncerMinVersion is the oldest PgBouncer the image may hold:
	// 1.21 brought prepared statements in transaction pooling
	// (max_prepared_statements), which pgx's default query mode needs.
	CNPGPgBouncerMinVersion = "1.21"
)

// trixiePgBouncerRoot is the PgBouncer image's root filesystem: Debian 13's
// pgbouncer (1.24, the version the operator's default image carries;
// Debian 12 has 1.18, without prepared statements in transaction pooling).
var trixiePgBouncerRoot = debianRoot{
	suite:     "trixie",
	packages:  []string{"ca-certificates", "pgbouncer"},
	variant:   fmt.Sprintf("cnpg-pgbouncer uid %d gid %d", CNPGPgBouncerUID, CNPGPgBouncerGID),
	verify:    verifyPgBouncerRoot,
	customize: customizePgBouncerRoot,
}

func (b *builder) cnpgPgBouncer() (Image, error) {
	base, err := b.debianBaseOf(trixiePgBouncerRoot)
	if err != nil {
		return Image{}, err
	}
	id := strconv.Itoa(CNPGPgBouncerUID) + ":" + strconv.Itoa(CNPGPgBouncerGID)
	return b.image(spec{
		name: "cnpg-pgbouncer", repository: "kommons/cnpg-pgbouncer", tag: keyTag("1"),
		base: base,
		// No entrypoint: the operator sets the command.
		config: v1.Config{
			Env:          []string{defaultPath},
			User:         id,
			WorkingDir:   "/",
			ExposedPorts: map[string]struct{}{"5432/tcp": {}},
		},
	})
}

// verifyPgBouncerRoot checks the executable and the package's version
// (at least CNPGPgBouncerMinVersion).
func verifyPgBouncerRoot(rootfs string) (string, error) {
	if _, err := os.Stat(filepath.Join(rootfs, "usr/sbin/pgbouncer")); err != nil {
		if _, err2 := os.Stat(filepath.Join(rootfs, CNPGPgBouncerBinary)); err2 != nil {
			return "", fmt.Errorf("debian trixie root filesystem lacks pgbouncer: %w", err)
		}
	}
	status, err := dpkgVersions(filepath.Join(rootfs, "var/lib/dpkg/status"))
	if err != nil {
		return "", err
	}
	v, ok := status["pgbouncer"]
	if !ok {
		return "", fmt.Errorf("debian trixie root filesystem: package pgbouncer is not installed")
	}
	if !versionAtLeast(v, CNPGPgBouncerMinVersion) {
		return "", fmt.Errorf("debian trixie root filesystem: pgbouncer %s, want %s or newer", v, CNPGPgBouncerMinVersion)
	}
	return "pgbouncer " + v, nil
}

// versionAtLeast compares the leading numeric dotted part of a Debian
// version (1.24.1-1 -> 1.24.1) with min.
func versionAtLeast(v, min string) bool {
	if i := strings.IndexAny(v, ":"); i >= 0 {
		v = v[i+1:]
	}
	if i := strings.IndexAny(v, "-+~"); i >= 0 {
		v = v[:i]
	}
	got, want := strings.Split(v, "."), strings.Split(min, ".")
	for i := range want {
		w, _ := strconv.Atoi(want[i])
		g := 0
		if i < len(got) {
			g, _ = strconv.Atoi(got[i])
		}
		if g != w {
			return g > w
		}
	}
	return true
}

// customizePgBouncerRoot makes the root filesystem the Pooler's image:
// the pgbouncer user and group with the Pooler pods' ids (created, or
// moved when the package made them), /usr/bin/pgbouncer, and the host
// details reset as in the other Debian images.
func customizePgBouncerRoot(rootfs string) error {
	if err := ensureUser(rootfs, "pgbouncer", CNPGPgBouncerUID, CNPGPgBouncerGID, "/var/lib/pgbouncer"); err != nil {
		return err
	}
	bin := filepath.Join(rootfs, CNPGPgBouncerBinary)
	if _, err := os.Lstat(bin); os.IsNotExist(err) {
		if err := os.Symlink("../sbin/pgbouncer", bin); err != nil {
			return err
		}
	}
	return resetHostFiles(rootfs)
}

// ensureUser gives rootfs a user and a group named name with ids uid and
// gid: rewritten (files re-owned) when they exist, else appended to
// etc/passwd, etc/group and etc/shadow (locked password, no shell).
func ensureUser(rootfs, name string, uid, gid int, home string) error {
	passwd, err := os.ReadFile(filepath.Join(rootfs, "etc/passwd"))
	if err != nil {
		return err
	}
	group, err := os.ReadFile(filepath.Join(rootfs, "etc/group"))
	if err != nil {
		return err
	}
	hasUser := strings.Contains("\n"+string(passwd), "\n"+name+":")
	hasGroup := strings.Contains("\n"+string(group), "\n"+name+":")
	if hasUser && hasGroup {
		return rewriteIDs(rootfs, name, uid, gid)
	}
	if hasUser || hasGroup {
		return fmt.Errorf("etc/passwd and etc/group: %s exists as only a user or only a group", name)
	}
	for _, f := range []string{"etc/passwd", "etc/group"} {
		data, err := os.ReadFile(filepath.Join(rootfs, f))
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Split(line, ":")
			if len(fields) > 2 && (f == "etc/passwd" && fields[2] == strconv.Itoa(uid) || f == "etc/group" && fields[2] == strconv.Itoa(gid)) {
				return fmt.Errorf("%s: id of %s already held by %s", f, name, fields[0])
			}
		}
	}
	add := map[string]string{
		"etc/passwd": fmt.Sprintf("%s:x:%d:%d:PgBouncer:%s:/usr/sbin/nologin\n", name, uid, gid, home),
		"etc/group":  fmt.Sprintf("%s:x:%d:\n", name, gid),
		"etc/shadow": name + ":!:1::::::\n",
	}
	for f, line := range add {
		p := filepath.Join(rootfs, f)
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		if err := os.WriteFile(p, append(data, line...), info.Mode().Perm()); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(rootfs, home), 0o750); err != nil {
		return err
	}
	return os.Chown(filepath.Join(rootfs, home), uid, gid)
}
