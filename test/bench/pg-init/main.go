// Command pg-init-bench measures pg-init against the shell baseline
// (baseline-init-db.sh, one psql process per statement) on a throwaway
// PostgreSQL, side by side in one run, and prints a Markdown report:
//
//	go run ./test/bench/pg-init -modules 100
//
// Phases (each module = role + database + pg_trgm, one process per module
// as one Kubernetes Job per module would run): baseline cold, baseline
// rerun, pg-init cold, pg-init rerun; then pg-init with all modules in one
// spec (cold, rerun), and -parallel pg-init processes at once.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/kommons/kommons/internal/testutil/pgtest"
)

func main() {
	modules := flag.Int("modules", 100, "modules to provision")
	parallel := flag.Int("parallel", 16, "concurrent pg-init processes in the parallel phase")
	flag.Parse()
	if err := run(*modules, *parallel); err != nil {
		fmt.Fprintln(os.Stderr, "pg-init-bench:", err)
		os.Exit(1)
	}
}

type phase struct {
	name    string
	total   time.Duration
	modules int
	errors  int
}

func (p phase) perModule() time.Duration { return p.total / time.Duration(p.modules) }

func run(modules, parallel int) error {
	dir, err := os.MkdirTemp("", "pg-init-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	_, self, _, _ := runtime.Caller(0)
	here := filepath.Dir(self)
	bin := filepath.Join(dir, "pg-init")
	build := exec.Command("go", "build", "-o", bin, "./cmd/pg-init")
	build.Dir = filepath.Join(here, "..", "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	loadStart := loadAvg()
	srv, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		return err
	}
	defer srv.Close()
	// The real psql binary first on PATH: Debian's /usr/bin/psql is a Perl
	// wrapper (pg_wrapper) that container images such as postgres:N do not use.
	env := append([]string{"PATH=" + pgBin() + ":" + os.Getenv("PATH"), "HOME=" + dir}, srv.Env()...)
	baseline := filepath.Join(here, "baseline-init-db.sh")

	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("bench-password-1\n"), 0o600); err != nil {
		return err
	}
	spec := func(name string, n int) (string, error) {
		var b strings.Builder
		b.WriteString("roles:\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "  - {name: app%d, passwordFile: %s}\n", i, pw)
		}
		b.WriteString("databases:\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "  - {name: app%d, owner: app%d, extensions: [pg_trgm]}\n", i, i)
		}
		path := filepath.Join(dir, name)
		return path, os.WriteFile(path, []byte(b.String()), 0o644)
	}
	one, err := spec("one.yaml", 1)
	if err != nil {
		return err
	}
	all, err := spec("all.yaml", modules)
	if err != nil {
		return err
	}
	exe := func(name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
		}
		return nil
	}
	sequential := func(label string, each func(i int) error) (phase, error) {
		start := time.Now()
		for i := 0; i < modules; i++ {
			if err := each(i); err != nil {
				return phase{}, fmt.Errorf("%s: %w", label, err)
			}
		}
		ph := phase{name: label, total: time.Since(start), modules: modules}
		fmt.Fprintf(os.Stderr, "%s: %s (%.1f ms/module)\n", label, ph.total.Round(time.Millisecond), ms(ph.perModule()))
		return ph, nil
	}
	baselineModule := func(i int) error {
		return exe(baseline, fmt.Sprintf("base_m%d_app", i), fmt.Sprintf("base_m%d_app", i), "bench-password-1", "pg_trgm")
	}
	pginitModule := func(i int) error {
		return exe(bin, "--spec", one, "--namespace", "bench", "--release", fmt.Sprintf("m%d", i), "--log-format", "json")
	}
	var phases []phase
	for _, p := range []struct {
		label string
		each  func(int) error
	}{
		{"baseline (psql per statement) cold", baselineModule},
		{"baseline (psql per statement) rerun", baselineModule},
		{"pg-init, one process per module, cold", pginitModule},
		{"pg-init, one process per module, rerun", pginitModule},
	} {
		ph, err := sequential(p.label, p.each)
		if err != nil {
			return err
		}
		phases = append(phases, ph)
	}
	// Reference: the baseline's creating statements for every module from
	// ONE psql session (reconnecting only to create the extension), without
	// existence checks: roughly the server-side cost any provisioner pays,
	// dominated by CREATE DATABASE.
	var floorSQL strings.Builder
	for i := 0; i < modules; i++ {
		n := fmt.Sprintf("floor_m%d_app", i)
		fmt.Fprintf(&floorSQL, "CREATE ROLE %s LOGIN PASSWORD 'bench-password-1';\nCREATE DATABASE %s OWNER %s;\n\\c %s\nCREATE EXTENSION pg_trgm;\n\\c postgres\n", n, n, n, n)
	}
	floorFile := filepath.Join(dir, "floor.sql")
	if err := os.WriteFile(floorFile, []byte(floorSQL.String()), 0o644); err != nil {
		return err
	}
	start := time.Now()
	if err := exe("psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f", floorFile); err != nil {
		return err
	}
	floor := phase{name: "reference: same DDL from one psql session (not idempotent, not a provisioner)", total: time.Since(start), modules: modules}
	fmt.Fprintf(os.Stderr, "%s: %s\n", floor.name, floor.total.Round(time.Millisecond))
	for _, label := range []string{"pg-init, all modules in one spec, cold", "pg-init, all modules in one spec, rerun"} {
		start := time.Now()
		if err := exe(bin, "--spec", all, "--namespace", "bench", "--release", "all"); err != nil {
			return err
		}
		phases = append(phases, phase{name: label, total: time.Since(start), modules: modules})
	}
	phases = append(phases, floor)
	// Parallel: half the processes provision distinct modules, half the same one.
	start = time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := 0
	for i := 0; i < parallel; i++ {
		release := fmt.Sprintf("p%d", i)
		if i%2 == 1 {
			release = "pshared"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--spec", one, "--namespace", "bench", "--release", release)
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				mu.Lock()
				errs++
				mu.Unlock()
				fmt.Fprintf(os.Stderr, "parallel run %d failed: %v\n%s\n", i, err, out)
			}
		}()
	}
	wg.Wait()
	phases = append(phases, phase{name: fmt.Sprintf("pg-init, %d processes at once", parallel), total: time.Since(start), modules: parallel, errors: errs})

	host, _ := os.Hostname()
	fmt.Printf("## pg-init benchmark\n\n`go run ./test/bench/pg-init -modules %d -parallel %d` on %s (%d CPUs, %s/%s), %s, PostgreSQL from %s; "+
		"load average at start %s, at end %s\n\n",
		modules, parallel, host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format("2006-01-02"), pgBin(), loadStart, loadAvg())
	fmt.Println("| phase | total | per module | errors |")
	fmt.Println("|---|---:|---:|---:|")
	for _, p := range phases {
		fmt.Printf("| %s | %s | %.1f ms | %d |\n", p.name, p.total.Round(time.Millisecond), ms(p.perModule()), p.errors)
	}
	ratio := func(a, b phase) float64 { return float64(a.total) / float64(b.total) }
	fmt.Printf("\nRatios (baseline time / pg-init time): cold %.1fx, rerun %.1fx (one process per module); "+
		"cold %.1fx, rerun %.1fx (one spec for all modules).\n",
		ratio(phases[0], phases[2]), ratio(phases[1], phases[3]), ratio(phases[0], phases[4]), ratio(phases[1], phases[5]))
	fmt.Printf("Server-side reference (same DDL, one psql session): %.1f ms/module; pg-init cold per module / reference = %.2f.\n",
		ms(phases[6].perModule()), ratio(phases[2], phases[6]))
	if errs > 0 {
		return fmt.Errorf("%d parallel runs failed", errs)
	}
	return nil
}

// loadAvg is the 1-minute load average (other work on the machine skews every phase).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pgBin() string {
	d, err := pgtest.BinDir()
	if err != nil {
		return "?"
	}
	return d
}
