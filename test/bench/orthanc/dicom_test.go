package orthanc_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kommons/kommons/internal/testutil/orthanctest"
)

// BenchmarkDicomIngest is BenchmarkIngest over DICOM: b.N distinct
// instances C-STOREd by `clients` concurrent DCMTK storescu processes (one
// association each, b.N/clients files per association, the chart's AE
// title), spread evenly over 1 or 2 replicas, and reports instances per
// second. Writing the files to disk is not timed; starting storescu is.
func BenchmarkDicomIngest(b *testing.B) {
	orthanctest.Require(b)
	orthanctest.RequireDcmtk(b)
	for _, replicas := range []int{1, 2} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			run := fmt.Sprintf("dimse%d", runSeq.Add(1))
			instances := startCluster(b, replicas, run)
			dir := b.TempDir()
			batches := make([][]string, clients)
			for i := 0; i < b.N; i++ {
				p := filepath.Join(dir, fmt.Sprintf("%06d.dcm", i))
				data := orthanctest.DicomFile(orthanctest.DicomSpec{Run: run, Study: i/perStudy + 1, Instance: i%perStudy + 1, Size: imageSide})
				if err := os.WriteFile(p, data, 0o600); err != nil {
					b.Fatal(err)
				}
				batches[i%clients] = append(batches[i%clients], p)
			}
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			errs := make([]error, clients)
			for w := 0; w < clients; w++ {
				if len(batches[w]) == 0 {
					continue
				}
				in := instances[w%len(instances)]
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					args := append([]string{"-aet", "BENCH", "-aec", "ORTHANC", "127.0.0.1", strconv.Itoa(in.DicomPort)}, batches[w]...)
					if out, err := exec.Command("storescu", args...).CombinedOutput(); err != nil {
						errs[w] = fmt.Errorf("storescu to %s: %w\n%s", in.Name, err, out)
					}
				}(w)
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			st, err := instances[0].Stats()
			if err != nil {
				b.Fatal(err)
			}
			if st.CountInstances != b.N {
				b.Fatalf("replica 0 counts %d instances after %d C-STOREs", st.CountInstances, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "inst/s")
		})
	}
}
