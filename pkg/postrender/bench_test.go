package postrender_test

import (
	"fmt"
	"testing"

	"github.com/kommons/kommons/pkg/postrender"
	"github.com/kommons/kommons/pkg/postrender/policy"
	"github.com/kommons/kommons/test/bench/postrender/manifestgen"
)

const benchPolicy = `
storage:
  defaultClass: standard
  rules:
  - match: {labels: {app.kubernetes.io/name: postgresql}}
    storageClass: fast-ssd
pools:
- name: db
  nodeSelector: {agentpool: db}
  tolerations: [{key: dedicated, operator: Equal, value: db, effect: NoSchedule}]
- name: app
  nodeSelector: {agentpool: app}
placement:
  defaultPool: app
  rules:
  - match: {labels: {app.kubernetes.io/name: postgresql}}
    pool: db
`

// BenchmarkProcess measures the library on generated chart output (every
// document validated, workloads and claims edited).
func BenchmarkProcess(b *testing.B) {
	p, err := policy.Parse([]byte(benchPolicy))
	if err != nil {
		b.Fatal(err)
	}
	eng, err := postrender.New(p, postrender.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{100, 1000, 10000} {
		in := manifestgen.Generate(n)
		b.Run(fmt.Sprintf("docs=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := eng.Process(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
