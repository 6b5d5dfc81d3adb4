// Command pg-init-bench measures pg-init against the shell baseline
// (baseline-init-db.sh, one psql process per statement) on throwaway
// PostgreSQL servers, side by side in one run, and prints a Markdown report:
//
//	go run ./test/bench/pg-init -modules 100 -parallel 16 -trials 3
//
// Part 1, cold trials: each contender (the baseline, the same DDL from one
// psql session as a reference, pg-init with all modules in one spec, the
// same with --parallel 1, and optionally a -compare binary) provisions
// -modules modules (role + database + pg_trgm) on a fresh server of its
// own. The contenders take turns, in an order rotated from trial to trial,
// so that changes in the machine's load hit all of them alike. Before each
// timed run the page cache is flushed (sync) so that no contender pays for
// the previous one's write-back. The servers' directories (up to 1.5 GB
// each) are removed only at the end: on ext4 without a journal, creating
// files within minutes of mass deletions is slower (the allocator skips
// recently deleted inodes), which would penalise whichever contender ran
// next.
//
// Part 2, on one shared server: baseline cold and rerun, pg-init with one
// process per module (as one Kubernetes Job per module runs it) cold and
// rerun, a server-side reference, pg-init with all modules in one spec cold
// and rerun, and -parallel pg-init processes at once.
//
// Part 3, CREATE DATABASE strategies: -strategy-dbs databases, each with
// pg_trgm, created from one session with STRATEGY WAL_LOG and FILE_COPY, on
// a server with fsync off (the harness) and one with fsync on (any real
// server), to justify leaving the strategy to the server (WAL_LOG).
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/testutil/pgtest"
)

func main() {
	modules := flag.Int("modules", 100, "modules to provision")
	parallel := flag.Int("parallel", 16, "concurrent pg-init processes in the parallel phase")
	trials := flag.Int("trials", 3, "cold trials (each contender on a fresh server per trial); 0 skips part 1")
	bin := flag.String("pg-init", "", "pg-init binary to measure (default: build ./cmd/pg-init)")
	compare := flag.String("compare", "", "another pg-init binary (e.g. a build of an older commit) added to the cold trials")
	strategyDBs := flag.Int("strategy-dbs", 20, "databases per CREATE DATABASE strategy and fsync setting in part 3; 0 skips it")
	flag.Parse()
	if err := run(config{modules: *modules, parallel: *parallel, trials: *trials, bin: *bin, compare: *compare, strategyDBs: *strategyDBs}); err != nil {
		fmt.Fprintln(os.Stderr, "pg-init-bench:", err)
		os.Exit(1)
	}
}

type config struct {
	modules, parallel, trials, strategyDBs int
	bin, compare                           string
}

type phase struct {
	name    string
	total   time.Duration
	modules int
	errors  int
}

func (p phase) perModule() time.Duration { return p.total / time.Duration(p.modules) }

// bench holds what every phase shares.
type bench struct {
	cfg      config
	dir      string
	bin      string
	baseline string
	one, all string // spec files: one module, all modules
	servers  []*pgtest.Server
}

func run(cfg config) error {
	dir, err := os.MkdirTemp("", "pg-init-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	_, self, _, _ := runtime.Caller(0)
	here := filepath.Dir(self)
	b := &bench{cfg: cfg, dir: dir, bin: cfg.bin, baseline: filepath.Join(here, "baseline-init-db.sh")}
	defer b.closeServers()
	if b.bin == "" {
		b.bin = filepath.Join(dir, "pg-init")
		build := exec.Command("go", "build", "-o", b.bin, "./cmd/pg-init")
		build.Dir = filepath.Join(here, "..", "..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("bench-password-1\n"), 0o600); err != nil {
		return err
	}
	if b.one, err = writeSpec(dir, "one.yaml", pw, 1); err != nil {
		return err
	}
	if b.all, err = writeSpec(dir, "all.yaml", pw, cfg.modules); err != nil {
		return err
	}
	host, _ := os.Hostname()
	fmt.Printf("## pg-init benchmark\n\n`go run ./test/bench/pg-init %s` on %s (%d CPUs, %s/%s), %s, "+
		"psql from %s; load average at start %s\n\n",
		strings.Join(os.Args[1:], " "), host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH,
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), pgBin(), loadAvg())
	if cfg.trials > 0 {
		if err := b.coldTrials(); err != nil {
			return err
		}
	}
	if err := b.sharedServer(); err != nil {
		return err
	}
	if cfg.strategyDBs > 0 {
		if err := b.strategies(); err != nil {
			return err
		}
	}
	fmt.Printf("\nLoad average at end %s.\n", loadAvg())
	return nil
}

func writeSpec(dir, name, pw string, n int) (string, error) {
	var s strings.Builder
	s.WriteString("roles:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&s, "  - {name: app%d, passwordFile: %s}\n", i, pw)
	}
	s.WriteString("databases:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&s, "  - {name: app%d, owner: app%d, extensions: [pg_trgm]}\n", i, i)
	}
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(s.String()), 0o644)
}

// server starts a fresh throwaway server, closed (and its directory
// removed) at the end of the run.
func (b *bench) server() (*pgtest.Server, []string, error) {
	srv, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		return nil, nil, err
	}
	if len(b.servers) == 0 {
		// The server itself says which version runs (KOMMONS_PG_DEFAULT_MAJOR picks one).
		fmt.Printf("Servers: %s (binaries in %s).\n\n", srv.Version(), srv.BinDir())
	}
	b.servers = append(b.servers, srv)
	// The real psql binary first on PATH: Debian's /usr/bin/psql is a Perl
	// wrapper (pg_wrapper) that container images such as postgres:N do not use.
	env := append([]string{"PATH=" + pgBin() + ":" + os.Getenv("PATH"), "HOME=" + b.dir}, srv.Env()...)
	return srv, env, nil
}

func (b *bench) closeServers() {
	for _, s := range b.servers {
		s.Close()
	}
}

func (b *bench) exe(env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return nil
}

func (b *bench) baselineModule(env []string, i int) error {
	name := fmt.Sprintf("base_m%d_app", i)
	return b.exe(env, b.baseline, name, name, "bench-password-1", "pg_trgm")
}

// reference sends the baseline's creating statements for every module
// from ONE psql session (reconnecting only to create the extension),
// without existence checks: roughly the server-side cost of the DDL when
// it runs one statement at a time, dominated by CREATE DATABASE. It is not
// idempotent and not a provisioner.
func (b *bench) reference(env []string, prefix string) error {
	var sql strings.Builder
	for i := 0; i < b.cfg.modules; i++ {
		n := fmt.Sprintf("%s_m%d_app", prefix, i)
		fmt.Fprintf(&sql, "CREATE ROLE %s LOGIN PASSWORD 'bench-password-1';\nCREATE DATABASE %s OWNER %s;\n\\c %s\nCREATE EXTENSION pg_trgm;\n\\c postgres\n", n, n, n, n)
	}
	file := filepath.Join(b.dir, prefix+".sql")
	if err := os.WriteFile(file, []byte(sql.String()), 0o644); err != nil {
		return err
	}
	return b.exe(env, "psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f", file)
}

// asProvisioner runs bin's bootstrap-provisioner with bootstrapArgs as the
// admin (the password file is b.dir/bench), then run with the libpq
// environment switched to that provisioner role: how tenants' pg-init Jobs
// connect. The bootstrap is part of the timed run (commons runs it once
// per tenant; it is one role).
func (b *bench) asProvisioner(bin string, bootstrapArgs []string, run func(env []string) error) func(env []string) error {
	return func(env []string) error {
		const pw = "bench-provisioner-password-1"
		if err := os.WriteFile(filepath.Join(b.dir, "bench"), []byte(pw+"\n"), 0o600); err != nil {
			return err
		}
		if err := b.exe(env, bin, append([]string{"bootstrap-provisioner"}, bootstrapArgs...)...); err != nil {
			return err
		}
		var as []string
		for _, e := range env {
			if !strings.HasPrefix(e, "PGUSER=") && !strings.HasPrefix(e, "PGPASSWORD=") {
				as = append(as, e)
			}
		}
		return run(append(as, "PGUSER=bench_tenant", "PGPASSWORD="+pw))
	}
}

// contender is one way of provisioning all modules cold.
type contender struct {
	name string
	run  func(env []string) error
}

// coldTrials runs every contender on a fresh server per trial, in a
// rotated order, and prints each run and the ratios.
func (b *bench) coldTrials() error {
	oneSpec := func(bin string, extra ...string) func(env []string) error {
		return func(env []string) error {
			return b.exe(env, bin, append([]string{"--spec", b.all, "--namespace", "bench", "--release", "all"}, extra...)...)
		}
	}
	contenders := []contender{
		{"baseline (psql per statement)", func(env []string) error {
			for i := 0; i < b.cfg.modules; i++ {
				if err := b.baselineModule(env, i); err != nil {
					return err
				}
			}
			return nil
		}},
		{"reference: same DDL from one psql session", func(env []string) error { return b.reference(env, "ref") }},
		{"pg-init, one spec", oneSpec(b.bin)},
		{"pg-init --parallel 1, one spec", oneSpec(b.bin, "--parallel", "1")},
		{"pg-init as the tenant's provisioner, one spec", b.asProvisioner(b.bin, []string{"--tenants", "bench=bench_tenant", "--passwords-dir", b.dir}, oneSpec(b.bin))},
	}
	if b.cfg.compare != "" {
		contenders = append(contenders, contender{"compare: " + filepath.Base(b.cfg.compare) + ", one spec", oneSpec(b.cfg.compare)})
		contenders = append(contenders, contender{"compare: " + filepath.Base(b.cfg.compare) + " as the shared provisioner, one spec",
			b.asProvisioner(b.cfg.compare, []string{"--role", "bench_tenant", "--password-file", filepath.Join(b.dir, "bench")}, oneSpec(b.cfg.compare))})
	}
	times := make([][]time.Duration, len(contenders)) // [contender][trial]
	fmt.Printf("### Cold: %d modules, each contender on a fresh server per trial, order rotated\n\n", b.cfg.modules)
	fmt.Println("| trial | contender | total | per module | load average before | machine CPU idle during the run |")
	fmt.Println("|---:|---|---:|---:|---:|---:|")
	for t := 0; t < b.cfg.trials; t++ {
		for k := range contenders {
			c := (t + k) % len(contenders)
			_, env, err := b.server()
			if err != nil {
				return err
			}
			syscall.Sync()
			load := loadAvg()
			cpu0 := readCPU()
			start := time.Now()
			if err := contenders[c].run(env); err != nil {
				return fmt.Errorf("%s: %w", contenders[c].name, err)
			}
			el := time.Since(start)
			idle := readCPU().idleSince(cpu0)
			b.servers[len(b.servers)-1].Stop()
			times[c] = append(times[c], el)
			fmt.Printf("| %d | %s | %s | %.1f ms | %s | %.0f%% |\n", t+1, contenders[c].name, el.Round(time.Millisecond),
				ms(el)/float64(b.cfg.modules), load, 100*idle)
			fmt.Fprintf(os.Stderr, "trial %d: %s: %s\n", t+1, contenders[c].name, el.Round(time.Millisecond))
		}
	}
	fmt.Printf("\n| contender | median | min | max | baseline / contender, per trial | median ratio |\n|---|---:|---:|---:|---|---:|\n")
	for c := range contenders {
		var ratios []string
		var rs []float64
		for t := range times[c] {
			r := float64(times[0][t]) / float64(times[c][t])
			rs = append(rs, r)
			ratios = append(ratios, fmt.Sprintf("%.1fx", r))
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %.1fx |\n", contenders[c].name, median(times[c]).Round(time.Millisecond),
			slices.Min(times[c]).Round(time.Millisecond), slices.Max(times[c]).Round(time.Millisecond),
			strings.Join(ratios, ", "), medianFloat(rs))
	}
	// The reference is the server's own cost of the DDL, one statement at
	// a time: pg-init takes at most baseline / 5 exactly when it runs that
	// DDL at least 5 x reference / baseline times faster than one session.
	var got, need []string
	for t := range times[0] {
		got = append(got, fmt.Sprintf("%.2fx", float64(times[1][t])/float64(times[2][t])))
		need = append(need, fmt.Sprintf("%.2fx", 5*float64(times[1][t])/float64(times[0][t])))
	}
	fmt.Printf("\nReference / %s, per trial: %s. Needed for 5x the baseline: %s.\n", contenders[2].name,
		strings.Join(got, ", "), strings.Join(need, ", "))
	fmt.Println()
	return nil
}

// sharedServer runs part 2: every phase on one server.
func (b *bench) sharedServer() error {
	_, env, err := b.server()
	if err != nil {
		return err
	}
	modules := b.cfg.modules
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
	baselineModule := func(i int) error { return b.baselineModule(env, i) }
	pginitModule := func(i int) error {
		return b.exe(env, b.bin, "--spec", b.one, "--namespace", "bench", "--release", fmt.Sprintf("m%d", i), "--log-format", "json")
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
	start := time.Now()
	if err := b.reference(env, "floor"); err != nil {
		return err
	}
	floor := phase{name: "reference: same DDL from one psql session (not idempotent, not a provisioner)", total: time.Since(start), modules: modules}
	fmt.Fprintf(os.Stderr, "%s: %s\n", floor.name, floor.total.Round(time.Millisecond))
	for _, label := range []string{"pg-init, all modules in one spec, cold", "pg-init, all modules in one spec, rerun"} {
		start := time.Now()
		if err := b.exe(env, b.bin, "--spec", b.all, "--namespace", "bench", "--release", "all"); err != nil {
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
	for i := 0; i < b.cfg.parallel; i++ {
		release := fmt.Sprintf("p%d", i)
		if i%2 == 1 {
			release = "pshared"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, b.bin, "--spec", b.one, "--namespace", "bench", "--release", release)
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
	phases = append(phases, phase{name: fmt.Sprintf("pg-init, %d processes at once", b.cfg.parallel), total: time.Since(start), modules: b.cfg.parallel, errors: errs})

	fmt.Printf("### Every phase on one shared server, in this order\n\n")
	fmt.Println("| phase | total | per module | errors |")
	fmt.Println("|---|---:|---:|---:|")
	for _, p := range phases {
		fmt.Printf("| %s | %s | %.1f ms | %d |\n", p.name, p.total.Round(time.Millisecond), ms(p.perModule()), p.errors)
	}
	ratio := func(a, b phase) float64 { return float64(a.total) / float64(b.total) }
	fmt.Printf("\nRatios (baseline time / pg-init time): cold %.1fx, rerun %.1fx (one process per module); "+
		"cold %.1fx, rerun %.1fx (one spec for all modules, on a server that already holds the earlier phases' %d databases).\n",
		ratio(phases[0], phases[2]), ratio(phases[1], phases[3]), ratio(phases[0], phases[4]), ratio(phases[1], phases[5]), 2*modules)
	fmt.Printf("Server-side reference (same DDL, one psql session): %.1f ms/module; pg-init one spec cold per module / reference = %.2f.\n",
		ms(phases[6].perModule()), ratio(phases[4], phases[6]))
	if errs > 0 {
		return fmt.Errorf("%d parallel runs failed", errs)
	}
	return nil
}

// strategies times CREATE DATABASE ... STRATEGY s plus CREATE EXTENSION
// pg_trgm (over a new connection, as pg-init does) from one session, for
// each strategy, on a server with fsync off and one with fsync on.
func (b *bench) strategies() error {
	fmt.Printf("\n### CREATE DATABASE strategies: %d databases with pg_trgm each, one session, per server setting\n\n", b.cfg.strategyDBs)
	fmt.Println("| server | WAL_LOG (the default) | FILE_COPY |")
	fmt.Println("|---|---:|---:|")
	for _, fsync := range []string{"off", "on"} {
		var cells []string
		for _, strategy := range []string{"WAL_LOG", "FILE_COPY"} {
			// A fresh server each: FILE_COPY's checkpoints would otherwise
			// also write out what the previous strategy left dirty.
			srv, err := pgtest.Start(pgtest.Options{Settings: map[string]string{"fsync": fsync, "full_page_writes": fsync}})
			if err != nil {
				return err
			}
			b.servers = append(b.servers, srv)
			syscall.Sync()
			d, err := createDatabases(srv, strategy, b.cfg.strategyDBs)
			srv.Stop()
			if err != nil {
				return fmt.Errorf("strategy %s, fsync=%s: %w", strategy, fsync, err)
			}
			cells = append(cells, fmt.Sprintf("%.1f ms per database", ms(d)/float64(b.cfg.strategyDBs)))
		}
		fmt.Printf("| fsync=%s, full_page_writes=%s | %s |\n", fsync, fsync, strings.Join(cells, " | "))
	}
	return nil
}

func createDatabases(srv *pgtest.Server, strategy string, n int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, srv.AdminDSN())
	if err != nil {
		return 0, err
	}
	defer admin.Close(context.Background())
	start := time.Now()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("strategy_%s_%d", strings.ToLower(strategy), i)
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" STRATEGY "+strategy); err != nil {
			return 0, err
		}
		conn, err := pgx.Connect(ctx, srv.DSN(pgtest.AdminUser, srv.AdminPassword(), name))
		if err != nil {
			return 0, err
		}
		_, err = conn.Exec(ctx, "CREATE EXTENSION pg_trgm")
		conn.Close(context.Background())
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// cpuTimes are the aggregate CPU counters of /proc/stat (clock ticks).
type cpuTimes struct{ idle, total uint64 }

func readCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var t cpuTimes
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal (guest time is included in user)
			t.total += v
		}
		if i == 3 || i == 4 {
			t.idle += v
		}
	}
	return t
}

// idleSince is the share of all CPUs' time that was idle since c0.
func (c cpuTimes) idleSince(c0 cpuTimes) float64 {
	if c.total <= c0.total {
		return 0
	}
	return float64(c.idle-c0.idle) / float64(c.total-c0.total)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianFloat(fs []float64) float64 {
	s := slices.Clone(fs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
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
