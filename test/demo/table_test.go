package main

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckDataPlacement(t *testing.T) {
	r := &demoRun{cfg: &config{dbPool: "db", policy: "/p/policy.yaml"}, p: &progress{w: io.Discard}}
	r.rows = []workloadRow{
		{Namespace: "commons", Kind: "StatefulSet", Name: "commons-postgresql", Pools: []string{"db"}, class: []string{"database"}},
		{Namespace: "imaging", Kind: "Deployment", Name: "orthanc", Pools: []string{"app"}, class: []string{""}},
	}
	require.NoError(t, r.checkDataPlacement())

	r.rows = append(r.rows, workloadRow{Namespace: "commons", Kind: "StatefulSet", Name: "commons-minio", Pools: []string{"app"}, class: []string{"object-store"}})
	err := r.checkDataPlacement()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "StatefulSet commons/commons-minio (kommons.io/workload-class=object-store) runs on pool app, not db")
	assert.Contains(t, err.Error(), "/p/policy.yaml")

	r.cfg.dbPool = ""
	assert.NoError(t, r.checkDataPlacement(), "--db-pool= disables the check")
}
