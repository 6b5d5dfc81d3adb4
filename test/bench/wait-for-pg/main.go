// Command wait-for-pg-bench measures wait-for-pg against the loops it
// replaces, side by side in the same trials on one throwaway PostgreSQL:
//
//   - server-start: the server is down; the waiters start; after a random
//     1-3 s the server starts. T0 is the start of the benchmark's own first
//     successful connection (it polls every 2 ms).
//   - database-created: the server is up but the module database is
//     missing (pg-init has not run); after a random 1-3 s it is created. T0
//     is when CREATE DATABASE returns. A waiter that exits 0 before T0 is a
//     false "ready".
//
// Waiters: wait-for-pg (defaults), wait-for-pg --watch-interval 0 (backoff
// only), a wait_for_psql.py equivalent (psycopg2 connect, sleep 1 s) and a
// `until pg_isready; do sleep 1; done` loop. For each it reports detection
// latency (exit - T0) p50/p95/max, CPU (user+sys, from wait4 rusage,
// including children) per second of waiting, and peak RSS. It also measures
// the start-up-to-exit time of one check against a ready server.
//
// Run from the repository root:
//
//	go run ./test/bench/wait-for-pg -trials 50
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
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

type waiter struct {
	name string
	// argv builds the command for a database; empty means not applicable.
	argv func(s *pgtest.Server, db string) []string
}

type sample struct {
	latency  time.Duration // exit - T0
	cpu      time.Duration // user + sys
	wall     time.Duration // start to exit
	maxRSSKB int64
	code     int
	early    bool // exited before T0
}

func main() {
	trials := flag.Int("trials", 50, "trials per scenario")
	seed := flag.Uint64("seed", 1, "seed of the random delays")
	flag.Parse()
	if err := run(*trials, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "wait-for-pg-bench:", err)
		os.Exit(1)
	}
}

func run(trials int, seed uint64) error {
	dir, err := os.MkdirTemp("", "wait-for-pg-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "wait-for-pg")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/wait-for-pg")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build wait-for-pg (run from the repository root): %v\n%s", err, out)
	}
	here, err := filepath.Abs("test/bench/wait-for-pg")
	if err != nil {
		return err
	}
	py := filepath.Join(here, "wait_for_psql_equivalent.py")
	if err := exec.Command("/usr/bin/python3", "-c", "import psycopg2").Run(); err != nil {
		return fmt.Errorf("python3-psycopg2 is needed (apt-get install -y python3-psycopg2): %v", err)
	}
	s, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	port := strconv.Itoa(s.Port())

	waiters := []waiter{
		{"wait-for-pg", func(s *pgtest.Server, db string) []string {
			return []string{bin, "--quiet", "--timeout", "2m", "--database", db}
		}},
		{"wait-for-pg --watch-interval 0", func(s *pgtest.Server, db string) []string {
			return []string{bin, "--quiet", "--timeout", "2m", "--database", db, "--watch-interval", "0"}
		}},
		{"wait_for_psql.py (dbname=target)", func(s *pgtest.Server, db string) []string {
			return []string{"/usr/bin/python3", py, "--db_host", s.Host(), "--db_port", port, "--db_user", pgtest.AdminUser, "--db_name", db, "--timeout", "120"}
		}},
		{"wait_for_psql.py (original: dbname=postgres)", func(s *pgtest.Server, db string) []string {
			return []string{"/usr/bin/python3", py, "--db_host", s.Host(), "--db_port", port, "--db_user", pgtest.AdminUser, "--db_name", "postgres", "--timeout", "120"}
		}},
		{"pg_isready + sleep 1", func(s *pgtest.Server, db string) []string {
			return []string{"sh", "-c", fmt.Sprintf("until pg_isready -q -h %s -p %s -U %s -d %s; do sleep 1; done", s.Host(), port, pgtest.AdminUser, db)}
		}},
	}
	env := append(os.Environ(), "PGPASSWORD="+s.AdminPassword(), "PGHOST="+s.Host(), "PGPORT="+port,
		"PGUSER="+pgtest.AdminUser, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=5",
		"PGGSSENCMODE=disable") // libpq tools skip GSSAPI probing: their best case
	rnd := rand.New(rand.NewPCG(seed, 0))

	fmt.Printf("# wait-for-pg benchmark: %d trials per scenario, seed %d, %s, %d CPUs, load average %s\n\n",
		trials, seed, time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), loadavg())
	for _, scenario := range []string{"server-start", "database-created"} {
		results := make([][]sample, len(waiters))
		for i := 0; i < trials; i++ {
			delay := time.Second + time.Duration(rnd.Float64()*float64(2*time.Second))
			db := "bench_db"
			if scenario == "server-start" {
				db = "postgres"
				s.Stop()
			} else {
				if err := adminExec(s, "DROP DATABASE IF EXISTS bench_db WITH (FORCE)"); err != nil {
					return err
				}
			}
			samples, err := trial(s, waiters, env, db, delay, scenario)
			if err != nil {
				return fmt.Errorf("%s trial %d: %w", scenario, i+1, err)
			}
			for j := range samples {
				results[j] = append(results[j], samples[j])
			}
			fmt.Fprintf(os.Stderr, "%s %d/%d\n", scenario, i+1, trials)
		}
		report(scenario, waiters, results)
	}
	if err := steady(s, bin, py, env); err != nil {
		return err
	}
	if err := startup(s, bin, py, env, trials); err != nil {
		return err
	}
	fmt.Printf("load average at the end: %s\n", loadavg())
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// trial starts every waiter, makes the database connectable after delay,
// and collects one sample per waiter.
func trial(s *pgtest.Server, waiters []waiter, env []string, db string, delay time.Duration, scenario string) ([]sample, error) {
	type running struct {
		cmd   *exec.Cmd
		start time.Time
		exit  time.Time
		done  chan struct{}
	}
	rs := make([]*running, len(waiters))
	rssDir, err := os.MkdirTemp("", "rss-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(rssDir)
	for i, w := range waiters {
		cmd := timed(filepath.Join(rssDir, strconv.Itoa(i)), w.argv(s, db))
		cmd.Env = env
		r := &running{cmd: cmd, done: make(chan struct{}), start: time.Now()}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		go func() { _ = cmd.Wait(); r.exit = time.Now(); close(r.done) }()
		rs[i] = r
	}
	time.Sleep(delay) // the scenario: the database appears this much later
	var t0 time.Time
	if scenario == "server-start" {
		var wg sync.WaitGroup
		var startErr error
		wg.Add(1)
		go func() { defer wg.Done(); startErr = s.Start() }()
		t0 = firstConnect(s)
		wg.Wait()
		if startErr != nil {
			return nil, startErr
		}
	} else {
		if err := adminExec(s, "CREATE DATABASE "+db); err != nil {
			return nil, err
		}
		t0 = time.Now()
	}
	out := make([]sample, len(rs))
	for i, r := range rs {
		select {
		case <-r.done:
		case <-time.After(2 * time.Minute):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		ru := r.cmd.ProcessState.SysUsage().(*syscall.Rusage)
		out[i] = sample{
			latency:  r.exit.Sub(t0),
			cpu:      time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
			wall:     r.exit.Sub(r.start),
			maxRSSKB: readRSS(filepath.Join(rssDir, strconv.Itoa(i))),
			code:     r.cmd.ProcessState.ExitCode(),
			early:    r.exit.Before(t0),
		}
	}
	return out, nil
}

// firstConnect polls every 2 ms and returns the start time of the first
// attempt that connects: the moment the server became connectable (to
// within one poll).
// timed wraps argv in GNU time writing the peak RSS (KiB) to rssFile: the
// rusage of a child started by this Go process would report this process's
// RSS (the child shares its memory until exec). time's own rusage includes
// the command's (and its children's) CPU.
func timed(rssFile string, argv []string) *exec.Cmd {
	return exec.Command("/usr/bin/time", append([]string{"-f", "%M", "-o", rssFile}, argv...)...)
}

func readRSS(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
	return n
}

func firstConnect(s *pgtest.Server) time.Time {
	for {
		at := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.AdminDSN())
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return at
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func adminExec(s *pgtest.Server, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.AdminDSN())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1)*p + 0.5)
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func report(scenario string, waiters []waiter, results [][]sample) {
	fmt.Printf("## %s\n\n", scenario)
	fmt.Printf("| waiter | trials | false ready (exit before T0) | failed (exit != 0) | latency p50 | latency p95 | latency max | CPU per trial (mean) | CPU per s of wall time | peak RSS |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|\n")
	for i, w := range waiters {
		var lat []time.Duration
		var cpu, wall time.Duration
		var rss int64
		early, failed := 0, 0
		for _, s := range results[i] {
			cpu += s.cpu
			wall += s.wall
			rss = max(rss, s.maxRSSKB)
			switch {
			case s.code != 0:
				failed++
			case s.early:
				early++
			default:
				lat = append(lat, s.latency)
			}
		}
		latCols := "n/a | n/a | n/a"
		if len(lat) > 0 {
			latCols = fmt.Sprintf("%s | %s | %s", ms(pct(lat, 0.5)), ms(pct(lat, 0.95)), ms(pct(lat, 1)))
		}
		cpuPerS := float64(cpu) / float64(time.Millisecond) / wall.Seconds()
		cpuMean := float64(cpu) / float64(time.Millisecond) / float64(len(results[i]))
		fmt.Printf("| %s | %d | %d | %d | %s | %.1f ms | %.1f ms | %.1f MiB |\n", w.name, len(results[i]), early, failed, latCols, cpuMean, cpuPerS, float64(rss)/1024)
	}
	fmt.Println()
}

// startup measures one check against a ready server, process start to exit.
func startup(s *pgtest.Server, bin, py string, env []string, n int) error {
	port := strconv.Itoa(s.Port())
	cmds := []struct {
		name string
		argv []string
	}{
		{"wait-for-pg (level query)", []string{bin, "--quiet", "--database", "postgres"}},
		{"wait-for-pg --help (process start only)", []string{bin, "--help"}},
		{"wait_for_psql.py", []string{"/usr/bin/python3", py, "--db_host", s.Host(), "--db_port", port, "--db_user", pgtest.AdminUser}},
		{"pg_isready", []string{"pg_isready", "-q", "-h", s.Host(), "-p", port}},
	}
	fmt.Printf("## one check against a ready server (%d runs each)\n\n| command | p50 | p95 | peak RSS |\n|---|---|---|---|\n", n)
	for _, c := range cmds {
		var ds []time.Duration
		for i := 0; i < n; i++ {
			cmd := exec.Command(c.argv[0], c.argv[1:]...)
			cmd.Env = env
			t := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v\n%s", strings.Join(c.argv, " "), err, out)
			}
			ds = append(ds, time.Since(t))
		}
		// Peak RSS once more under GNU time (see timed).
		rssFile := filepath.Join(os.TempDir(), fmt.Sprintf("wait-for-pg-bench-rss-%d", os.Getpid()))
		cmd := timed(rssFile, c.argv)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(c.argv, " "), err, out)
		}
		rss := readRSS(rssFile)
		_ = os.Remove(rssFile)
		fmt.Printf("| %s | %.1f ms | %.1f ms | %.1f MiB |\n", c.name, float64(pct(ds, 0.5))/1e6, float64(pct(ds, 0.95))/1e6, float64(rss)/1024)
	}
	fmt.Println()
	return nil
}

// steady measures CPU during a 10 s wait that never succeeds (the server
// down, then the database missing), all waiters side by side, so start-up
// and the fast first retries weigh little.
func steady(s *pgtest.Server, bin, py string, env []string) error {
	const wait = 10 * time.Second
	secs := strconv.Itoa(int(wait.Seconds()))
	port := strconv.Itoa(s.Port())
	waiters := []struct{ name, argv string }{
		{"wait-for-pg", bin + " --quiet --timeout " + secs + "s --database bench_missing"},
		{"wait-for-pg --watch-interval 0", bin + " --quiet --timeout " + secs + "s --database bench_missing --watch-interval 0"},
		{"wait_for_psql.py", "/usr/bin/python3 " + py + " --db_host " + s.Host() + " --db_port " + port + " --db_user " + pgtest.AdminUser + " --db_name bench_missing --timeout " + secs},
		{"pg_isready + sleep 1", "timeout " + secs + " sh -c 'until pg_isready -q -h " + s.Host() + " -p " + port + " -d bench_missing; do sleep 1; done'"},
	}
	fmt.Printf("## steady state: CPU during a %s wait that does not succeed\n\n", wait)
	fmt.Printf("| waiter | server down: CPU per s | database missing: CPU per s |\n|---|---|---|\n")
	cpu := make([][2]float64, len(waiters))
	for phase := 0; phase < 2; phase++ {
		if phase == 0 {
			s.Stop()
		} else if err := s.Start(); err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "steady-")
		if err != nil {
			return err
		}
		cmds := make([]*exec.Cmd, len(waiters))
		for i, w := range waiters {
			cmds[i] = timed(filepath.Join(dir, strconv.Itoa(i)), []string{"sh", "-c", w.argv})
			cmds[i].Env = env
			if err := cmds[i].Start(); err != nil {
				return err
			}
		}
		for i, c := range cmds {
			_ = c.Wait() // non-zero by design: the wait does not succeed
			ru := c.ProcessState.SysUsage().(*syscall.Rusage)
			cpu[i][phase] = float64(ru.Utime.Nano()+ru.Stime.Nano()) / float64(time.Millisecond) / wait.Seconds()
		}
		_ = os.RemoveAll(dir)
	}
	for i, w := range waiters {
		missing := fmt.Sprintf("%.1f ms", cpu[i][1])
		if strings.HasPrefix(w.name, "pg_isready") {
			missing = "n/a (says ready)"
		}
		fmt.Printf("| %s | %.1f ms | %s |\n", w.name, cpu[i][0], missing)
	}
	fmt.Println()
	return nil
}
