package kubeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// StatusError is an API server answer other than 2xx: the HTTP status, the
// Status object's reason and message.
type StatusError struct {
	Verb, Path string
	Code       int
	Reason     string // e.g. NotFound, AlreadyExists, Conflict, Forbidden
	Message    string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("kubeapi: %s %s: %d %s: %s", e.Verb, e.Path, e.Code, e.Reason, e.Message)
}

func newStatusError(verb, path string, code int, body []byte) *StatusError {
	var st struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &st)
	if st.Reason == "" {
		st.Reason = http.StatusText(code)
	}
	if st.Message == "" && len(body) > 0 && len(body) < 512 {
		st.Message = string(body)
	}
	return &StatusError{Verb: verb, Path: path, Code: code, Reason: st.Reason, Message: st.Message}
}

// TransportError is a request that got no answer (connection refused,
// timeout, TLS failure).
type TransportError struct {
	Verb, Path string
	Err        error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("kubeapi: %s %s: %v", e.Verb, e.Path, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

func hasCode(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}

// IsNotFound reports a 404 answer.
func IsNotFound(err error) bool { return hasCode(err, http.StatusNotFound) }

// IsAlreadyExists reports a create of an existing object (409 AlreadyExists).
func IsAlreadyExists(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusConflict && se.Reason == "AlreadyExists"
}

// IsConflict reports a write refused because the object changed since it was
// read (409 Conflict: a resourceVersion precondition failed).
func IsConflict(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusConflict && se.Reason != "AlreadyExists"
}

// IsForbidden reports a request RBAC refused (403).
func IsForbidden(err error) bool { return hasCode(err, http.StatusForbidden) }

// IsTransient reports an error that a retry may cure: no answer, 429, 5xx.
func IsTransient(err error) bool {
	var te *TransportError
	if errors.As(err, &te) {
		return true
	}
	var se *StatusError
	return errors.As(err, &se) && (se.Code == http.StatusTooManyRequests || se.Code >= 500)
}
