package s3provision

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/kommons/kommons/internal/outcome"
)

// pruneBuckets deletes this scope's buckets that the plan no longer lists
// and whose marker says reclaimPolicy delete, when they are empty (s3-init
// never deletes an object). Others of the scope are reported retained.
func (r *bucketReconciler) pruneBuckets(ctx context.Context, plan *Plan, existing []string) ([]ObjectResult, error) {
	wanted := map[string]bool{}
	for _, b := range plan.Buckets {
		wanted[b.Physical] = true
	}
	var out []ObjectResult
	for _, name := range existing {
		if wanted[name] {
			continue
		}
		current, err := r.tags(ctx, name)
		if err != nil {
			if code := errorCode(err); code == "NoSuchBucket" || code == "AccessDenied" {
				continue // gone meanwhile, or not ours to read
			}
			return out, err
		}
		if owner, marked := ownerOfTags(current); !marked || owner != r.scope.String() {
			continue
		}
		res := ObjectResult{Kind: KindBucket, Name: name, Physical: name, Action: outcome.Retained}
		if current[TagReclaimPolicy] != ReclaimDelete {
			res.Reason = "not in the spec any more; reclaimPolicy " + orRetain(current[TagReclaimPolicy])
			out = append(out, res)
			continue
		}
		switch err := r.s3.RemoveBucket(ctx, name); errorCode(err) {
		case "":
			if err != nil {
				return out, fmt.Errorf("bucket %s: delete: %w", name, err)
			}
			res.Action = outcome.Deleted
		case "BucketNotEmpty":
			res.Reason = "not empty: s3-init never deletes objects; empty it to let --prune delete it"
		case "NoSuchBucket":
			continue
		default:
			return out, fmt.Errorf("bucket %s: delete: %w", name, err)
		}
		out = append(out, res)
	}
	return out, nil
}

// pruneUsers deletes this scope's users (and their policies) that the plan
// no longer lists and whose policy marker says reclaimPolicy delete.
func (r *userReconciler) pruneUsers(ctx context.Context, plan *Plan) ([]ObjectResult, error) {
	wanted := map[string]bool{}
	for _, u := range plan.Users {
		wanted[u.PolicyName] = true
	}
	policies, err := r.adm.ListCannedPolicies(ctx)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	names := make([]string, 0, len(policies))
	for name := range policies {
		if strings.HasPrefix(name, PolicyPrefix) && !wanted[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []ObjectResult
	for _, name := range names {
		var doc policyDoc
		if err := json.Unmarshal(policies[name], &doc); err != nil {
			continue // not written by s3-init
		}
		owner, marked := doc.owner()
		if !marked || owner != r.scope.String() {
			continue
		}
		accessKey := strings.TrimPrefix(name, PolicyPrefix)
		res := ObjectResult{Kind: KindUser, Name: accessKey, Physical: accessKey, Action: outcome.Retained}
		if reclaim := doc.reclaimPolicy(); reclaim != ReclaimDelete {
			res.Reason = "not in the spec any more; reclaimPolicy " + orRetain(reclaim)
			out = append(out, res)
			continue
		}
		if err := r.adm.RemoveUser(ctx, accessKey); err != nil && errorCode(err) != "XMinioAdminNoSuchUser" {
			return out, fmt.Errorf("user %s: delete: %w", accessKey, err)
		}
		if err := r.adm.RemoveCannedPolicy(ctx, name); err != nil && errorCode(err) != "XMinioAdminNoSuchPolicy" {
			return out, fmt.Errorf("user %s: delete policy %s: %w", accessKey, name, err)
		}
		res.Action = outcome.Deleted
		out = append(out, res)
	}
	return out, nil
}

// reclaimPolicy reads the reclaimPolicy field of the policy's marker.
func (p policyDoc) reclaimPolicy() string {
	for _, s := range p.Statement {
		rest, ok := strings.CutPrefix(s.Sid, PolicyMarkerPrefix)
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if v, ok := strings.CutPrefix(f, "reclaimPolicy="); ok {
				return v
			}
		}
	}
	return ""
}

func orRetain(p string) string {
	if p == "" {
		return ReclaimRetain
	}
	return p
}
