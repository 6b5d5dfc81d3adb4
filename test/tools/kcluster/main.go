// Command kcluster starts and stops the local test control plane outside of
// `go test`, for `make cluster-up` / `make cluster-down`, the demo and manual
// work:
//
//	kcluster up   [--dir DIR]   launch (detached) and print the env to source
//	kcluster down [--dir DIR]   stop every process by PID and remove DIR
//	kcluster env  [--dir DIR]   print the env of a running cluster
//
// DIR defaults to $KOMMONS_CLUSTER_DIR or ~/.cache/kommons/run/cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	def := os.Getenv(testcluster.EnvAttach)
	if def == "" {
		def = filepath.Join(testcluster.CacheDir(), "run", "cluster")
	}
	dir := fs.String("dir", def, "run directory of the cluster")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig (fakeprov only)")
	_ = fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "up":
		err = up(*dir)
	case "down":
		for _, s := range testcluster.StopDir(*dir) {
			fmt.Fprintln(os.Stderr, "stopped", s)
		}
		err = os.RemoveAll(*dir)
	case "env":
		err = printEnv(*dir)
	case "fakeprov":
		err = fakeprov(*kubeconfig)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kcluster:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kcluster up|down|env [--dir DIR]")
	os.Exit(2)
}

func up(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "kubeconfig")); err == nil {
		tools, err := testcluster.FindTools()
		if err != nil {
			return err
		}
		if _, err := testcluster.Attach(dir, tools); err == nil {
			fmt.Fprintln(os.Stderr, "kcluster: already running in", dir)
			return printEnv(dir)
		}
		testcluster.StopDir(dir) // a dead cluster's leftovers
	}
	tools, err := testcluster.FindTools()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err = testcluster.Launch(ctx, tools, testcluster.Options{
		Dir: dir, Detach: true, ProvisionerCommand: []string{self, "fakeprov"},
		Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "kcluster: "+f+"\n", a...) },
	})
	if err != nil {
		return err
	}
	return printEnv(dir)
}

func printEnv(dir string) error {
	kc := filepath.Join(dir, "kubeconfig")
	if _, err := os.Stat(kc); err != nil {
		return errors.New("no cluster in " + dir + " (make cluster-up)")
	}
	tools, err := testcluster.FindTools()
	if err != nil {
		return err
	}
	fmt.Printf("export KUBECONFIG=%s\nexport %s=%s\nexport PATH=%s:%s:$PATH\n", kc, testcluster.EnvAttach, dir,
		tools.KubeBin, filepath.Dir(tools.Helm3))
	return nil
}

func fakeprov(kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger := log.New(os.Stderr, "", log.LstdFlags)
	// The kwok pods of the charts' secret-init Jobs (testcluster.SecretInitComponent).
	if root, err := testcluster.RepoRoot(); err == nil {
		go testcluster.RunSecretInitPods(ctx, cs, cfg, root, filepath.Dir(kubeconfig), logger)
	} else {
		logger.Printf("secret-init pods will not run: %v", err)
	}
	testcluster.RunProvisioner(ctx, cs, testcluster.ProvisionerName, logger)
	return nil
}
