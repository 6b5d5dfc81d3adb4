// Package orthanc benchmarks DICOM ingest through real Orthanc processes
// (Debian's orthanc + orthanc-postgresql) configured by what charts/orthanc
// renders, on one throwaway PostgreSQL: 1 replica against 2 replicas sharing
// the index, in the same run, with the same total client concurrency.
//
// Run from the repository root (root is needed for the private network
// namespace; see internal/testutil/orthanctest):
//
//	go test ./test/bench/orthanc -run '^$' -bench Ingest -benchtime 600x -count 3
//
// Figures: docs/benchmarks/orthanc.md.
package orthanc_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/test/e2e/orthanc"
)

func TestMain(m *testing.M) {
	orthanctest.EnterPrivateNetwork()
	pgtest.Main(m)
}

// clients is the number of concurrent uploaders, split evenly over the replicas.
const clients = 8

// perStudy instances share one study and series (parallel writes into one series).
const perStudy = 50

// imageSide is the side of the generated 8-bit images (128: 16 KiB of pixels, ~17 KiB files).
const imageSide = 128

var runSeq atomic.Int64

// startCluster provisions a fresh database (the rendered pg-init Job) and
// starts the replicas on one shared storage directory; they stop when the
// benchmark round ends.
func startCluster(b *testing.B, replicas int, run string) []*orthanctest.Instance {
	b.Helper()
	s := orthanc.Provision(b, pgtest.Shared(b), run, map[string]any{
		"replicaCount": replicas,
		"storage":      map[string]any{"type": "filesystem"},
	})
	storage := filepath.Join(b.TempDir(), "storage")
	out := make([]*orthanctest.Instance, replicas)
	for i := range out {
		out[i] = s.StartReplica(b, "web", fmt.Sprintf("%s-%s-%d", orthanc.Fullname, run, i), storage)
	}
	return out
}

// BenchmarkIngest uploads b.N distinct instances (POST /instances) with
// `clients` concurrent clients spread over 1 or 2 replicas and reports
// instances per second and the HTTP 503 serialization retries per upload.
func BenchmarkIngest(b *testing.B) {
	orthanctest.Require(b)
	for _, replicas := range []int{1, 2} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			run := fmt.Sprintf("bench%d", runSeq.Add(1))
			instances := startCluster(b, replicas, run)
			files := make([][]byte, b.N)
			for i := range files {
				files[i] = orthanctest.DicomFile(orthanctest.DicomSpec{Run: run, Study: i/perStudy + 1, Instance: i%perStudy + 1, Size: imageSide})
			}
			var next atomic.Int64
			var failed, retries atomic.Int64
			var firstErr atomic.Value
			b.SetBytes(int64(len(files[0])))
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < clients; w++ {
				in := instances[w%len(instances)]
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(len(files)) {
							return
						}
						r, retried, err := in.UploadRetrying(files[i], 20)
						retries.Add(int64(retried))
						if err != nil || r.Status != "Success" {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, fmt.Sprintf("%v %+v", err, r))
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d uploads failed, first: %v", n, firstErr.Load())
			}
			st, err := instances[0].Stats()
			if err != nil {
				b.Fatal(err)
			}
			if st.CountInstances != b.N {
				b.Fatalf("replica 0 counts %d instances after %d uploads", st.CountInstances, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "inst/s")
			b.ReportMetric(float64(retries.Load())/float64(b.N), "retries/op")
		})
	}
}
