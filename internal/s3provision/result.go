package s3provision

import "github.com/kommons/kommons/internal/outcome"

// Action is what a run did to one object.
type Action = outcome.Action

// Object kinds.
const (
	KindBucket = "bucket"
	KindUser   = "user"
)

// ObjectResult is the outcome for one object.
type ObjectResult = outcome.Result

// Report is the outcome of a run: results of a retried attempt are merged
// into those of the earlier ones (see outcome.Report.Record).
type Report = outcome.Report

// ConflictError reports objects s3-init refused to take over: they exist
// but carry another scope's ownership marker or none. --adopt overrides
// (except for a bucket name another account owns).
type ConflictError = outcome.ConflictError
