package s3provision

import (
	"fmt"
	"unicode"

	"github.com/kommons/kommons/internal/redact"
	"github.com/kommons/kommons/internal/s3names"
	"github.com/kommons/kommons/internal/secretfile"
)

// MaxSecretKeyLen is the longest secret key MinIO and AWS take; the
// shortest s3-init sets is redact.MinSecretLen (MinIO itself takes 8).
const MaxSecretKeyLen = 40

// Plan is a validated spec with physical names resolved and secret keys
// read: what a run makes true.
type Plan struct {
	Source  string
	Scope   Scope
	Buckets []PlannedBucket
	Users   []PlannedUser
}

// PlannedBucket is one bucket of the plan.
type PlannedBucket struct {
	Name          string // logical
	Physical      string // bucket name
	Versioning    *bool
	ReclaimPolicy string
}

// PlannedUser is one MinIO user of the plan.
type PlannedUser struct {
	Name            string // logical
	AccessKey       string // physical: s3names.Physical(scope, Name)
	PolicyName      string // the canned policy s3-init maintains for it
	SecretKeyFile   string
	Buckets         []string // logical
	PhysicalBuckets []string
	ReclaimPolicy   string
	secretKey       string
}

// PolicyPrefix starts the name of every canned policy s3-init maintains:
// PolicyPrefix + access key.
const PolicyPrefix = "kommons-s3-init-"

// NewPlan validates spec (applying defaults), resolves physical names and
// reads every user's secret key file. Errors are *SpecError naming source
// and field; a secret is never part of an error.
func NewPlan(source string, spec *Spec) (*Plan, error) {
	if err := spec.Validate(source); err != nil {
		return nil, err
	}
	var probs []string
	plan := &Plan{Source: source, Scope: spec.Scope}
	byLogical := map[string]string{}
	owner := map[string]string{}
	physical := func(path, logical string) string {
		name, err := s3names.Physical(spec.Scope.Namespace, spec.Scope.Release, logical)
		if err != nil { // unreachable after Validate
			probs = append(probs, fmt.Sprintf("%s: %v", path, err))
			return ""
		}
		if prev, ok := owner[name]; ok {
			probs = append(probs, fmt.Sprintf("%s: physical name %s is also the one of %s", path, name, prev))
		}
		owner[name] = path
		return name
	}
	for i, b := range spec.Buckets {
		path := fmt.Sprintf("buckets[%d].name", i)
		pb := PlannedBucket{Name: b.Name, Physical: physical(path, b.Name), Versioning: b.Versioning, ReclaimPolicy: b.ReclaimPolicy}
		byLogical[b.Name] = pb.Physical
		plan.Buckets = append(plan.Buckets, pb)
	}
	owner = map[string]string{} // access keys and bucket names are separate namespaces
	for i, u := range spec.Users {
		path := fmt.Sprintf("users[%d]", i)
		pu := PlannedUser{Name: u.Name, AccessKey: physical(path+".name", u.Name), SecretKeyFile: u.SecretKeyFile,
			Buckets: append([]string(nil), u.Buckets...), ReclaimPolicy: u.ReclaimPolicy}
		pu.PolicyName = PolicyPrefix + pu.AccessKey
		for _, b := range u.Buckets {
			pu.PhysicalBuckets = append(pu.PhysicalBuckets, byLogical[b])
		}
		secret, err := readSecretKey(u.SecretKeyFile)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s.secretKeyFile: %v", path, err))
		}
		pu.secretKey = secret
		plan.Users = append(plan.Users, pu)
	}
	if len(probs) > 0 {
		return nil, &SpecError{Source: source, Problems: probs}
	}
	return plan, nil
}

// readSecretKey reads a secret key file (secretfile.Read: a regular file of
// at most 64 KiB, one trailing newline ignored); the key must be
// redact.MinSecretLen to MaxSecretKeyLen printable ASCII characters without
// spaces. Errors never quote the content, nor give its length.
func readSecretKey(path string) (string, error) {
	s, err := secretfile.Read(path)
	if err != nil {
		return "", err
	}
	if len(s) < redact.MinSecretLen || len(s) > MaxSecretKeyLen {
		return "", fmt.Errorf("%s: the secret key must have %d to %d characters", path, redact.MinSecretLen, MaxSecretKeyLen)
	}
	for _, r := range s {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' {
			return "", fmt.Errorf("%s: the secret key must be printable ASCII without spaces", path)
		}
	}
	return s, nil
}

// Secrets returns every secret key of the plan, for redaction.
func (p *Plan) Secrets() []string {
	var out []string
	for _, u := range p.Users {
		if u.secretKey != "" {
			out = append(out, u.secretKey)
		}
	}
	return out
}
