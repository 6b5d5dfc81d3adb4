package s3provision

import (
	"encoding/json"
	"fmt"
	"slices"
)

// BucketActions are granted on each of a user's buckets.
var BucketActions = []string{"s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:ListBucketVersions"}

// ObjectActions are granted on the objects of each of a user's buckets.
// Bucket-level writes (DeleteBucket, PutBucketPolicy, PutBucketTagging, ...)
// are deliberately absent: a tenant cannot delete its bucket nor forge its
// ownership marker.
var ObjectActions = []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
	"s3:ListMultipartUploadParts", "s3:GetObjectVersion", "s3:DeleteObjectVersion",
	"s3:GetObjectTagging", "s3:PutObjectTagging", "s3:DeleteObjectTagging"}

// policyDoc is an IAM policy document in the subset s3-init writes.
type policyDoc struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid      string       `json:"Sid,omitempty"`
	Effect   string       `json:"Effect"`
	Action   stringOrList `json:"Action"`
	Resource stringOrList `json:"Resource"`
}

// stringOrList reads IAM's "one string or a list of strings".
type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings: %w", err)
	}
	*s = many
	return nil
}

// userPolicy is the canned policy of u: read-write on its buckets only.
func userPolicy(scope Scope, u PlannedUser) policyDoc {
	var buckets, objects []string
	for _, b := range u.PhysicalBuckets {
		buckets = append(buckets, "arn:aws:s3:::"+b)
		objects = append(objects, "arn:aws:s3:::"+b+"/*")
	}
	return policyDoc{Version: "2012-10-17", Statement: []statement{
		{Sid: policyMarker(scope, u.ReclaimPolicy), Effect: "Allow", Action: BucketActions, Resource: buckets},
		{Sid: "objects", Effect: "Allow", Action: ObjectActions, Resource: objects},
	}}
}

func (p policyDoc) bytes() []byte {
	b, _ := json.Marshal(p) // cannot fail: strings only
	return b
}

// parsePolicy reads a policy document as the server returns it.
func parsePolicy(raw []byte) (policyDoc, error) {
	var p policyDoc
	if err := json.Unmarshal(raw, &p); err != nil {
		return policyDoc{}, fmt.Errorf("parse policy: %w", err)
	}
	return p, nil
}

// owner returns the scope named by the policy's marker.
func (p policyDoc) owner() (string, bool) {
	for _, s := range p.Statement {
		if scope, ok := ownerOfPolicyMarker(s.Sid); ok {
			return scope, true
		}
	}
	return "", false
}

// equivalent compares two documents as sets (the server may reorder
// actions and resources).
func (p policyDoc) equivalent(q policyDoc) bool {
	if len(p.Statement) != len(q.Statement) {
		return false
	}
	norm := func(l []string) []string { c := slices.Clone(l); slices.Sort(c); return slices.Compact(c) }
	for i := range p.Statement {
		a, b := p.Statement[i], q.Statement[i]
		if a.Sid != b.Sid || a.Effect != b.Effect || !slices.Equal(norm(a.Action), norm(b.Action)) ||
			!slices.Equal(norm(a.Resource), norm(b.Resource)) {
			return false
		}
	}
	return true
}
