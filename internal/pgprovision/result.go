package pgprovision

import "github.com/kommons/kommons/internal/outcome"

// Action is what a run did to one object.
type Action = outcome.Action

// Object kinds.
const (
	KindRole      = "role"
	KindDatabase  = "database"
	KindExtension = "extension"
	KindSchema    = "schema"
)

// ObjectResult is the outcome for one object.
type ObjectResult = outcome.Result

// Report is the outcome of a run.
type Report = outcome.Report

// ConflictError reports objects pg-init refused to take over: they exist
// but carry another scope's ownership marker or none. --adopt overrides.
type ConflictError = outcome.ConflictError
