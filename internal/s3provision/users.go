package s3provision

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kommons/kommons/internal/outcome"
)

// userReconciler makes one MinIO user of the plan true: its canned policy
// (read-write on its buckets only, with the scope's marker), the user with
// the secret key from its file, and the policy as its only policy.
type userReconciler struct {
	adm   *madmin.AdminClient
	conn  Connection
	scope Scope
	adopt bool
	// createdByUs remembers users this process created (or tried to, when
	// the answer was lost), across retried attempts, so that a user created
	// by an attempt that failed later is reported as created.
	createdByUs map[string]bool
}

// The order of writes (policy, then user, then attachment) and of reads
// (user, then policy) lets a concurrent run never see a user of ours
// without its marked policy.
func (r *userReconciler) reconcile(ctx context.Context, u PlannedUser) (ObjectResult, error) {
	res := ObjectResult{Kind: KindUser, Name: u.Name, Physical: u.AccessKey, Action: outcome.Unchanged}
	info, err := r.adm.GetUserInfo(ctx, u.AccessKey)
	exists := true
	if err != nil {
		if errorCode(err) != "XMinioAdminNoSuchUser" {
			return res, fmt.Errorf("user %s: info: %w", u.AccessKey, err)
		}
		exists = false
	}
	want := userPolicy(r.scope, u)
	var current *policyDoc
	pi, err := r.adm.InfoCannedPolicyV2(ctx, u.PolicyName)
	switch {
	case err == nil:
		p, perr := parsePolicy(pi.Policy)
		if perr != nil {
			return res, fmt.Errorf("user %s: policy %s: %w", u.AccessKey, u.PolicyName, perr)
		}
		current = &p
	case errorCode(err) == "XMinioAdminNoSuchPolicy":
	default:
		return res, fmt.Errorf("user %s: policy %s: %w", u.AccessKey, u.PolicyName, err)
	}

	// Ownership: a user or policy of that name that is not marked as this
	// scope's is someone else's.
	owner, marked := "", false
	if current != nil {
		owner, marked = current.owner()
	}
	ours := marked && owner == r.scope.String()
	if (exists || current != nil) && !ours {
		what := describePolicyOwner(u.PolicyName, current, owner, marked)
		if !r.adopt {
			res.Action, res.Reason = outcome.Refused, what+"; rerun with --adopt to take it over"
			return res, nil
		}
		res.Changes = append(res.Changes, "adopted ("+what+")")
	}

	if current == nil || !current.equivalent(want) {
		if err := r.adm.AddCannedPolicy(ctx, u.PolicyName, want.bytes()); err != nil {
			return res, fmt.Errorf("user %s: write policy %s: %w", u.AccessKey, u.PolicyName, err)
		}
		if exists {
			res.Changes = append(res.Changes, "policy "+u.PolicyName)
		}
	}

	switch {
	case !exists:
		r.createdByUs[u.AccessKey] = true
		if err := r.adm.AddUser(ctx, u.AccessKey, u.secretKey); err != nil {
			return res, fmt.Errorf("user %s: create: %w", u.AccessKey, err)
		}
		res.Action = outcome.Created
	case r.createdByUs[u.AccessKey]:
		// An earlier attempt of this run created it with the spec's secret
		// key, then failed: report it as created.
		res.Action = outcome.Created
	case info.Status == madmin.AccountDisabled:
		// An administrator disabled it: leave it so, and do not probe the key.
		res.Changes = append(res.Changes, "left disabled")
	default:
		valid, err := r.secretKeyValid(ctx, u)
		if err != nil {
			return res, fmt.Errorf("user %s: check secret key: %w", u.AccessKey, err)
		}
		if !valid {
			if err := r.adm.SetUser(ctx, u.AccessKey, u.secretKey, madmin.AccountEnabled); err != nil {
				return res, fmt.Errorf("user %s: rotate secret key: %w", u.AccessKey, err)
			}
			res.Changes = append(res.Changes, "secret key rotated")
		}
	}

	attached := splitPolicies(info.PolicyName)
	if !exists || !slices.Equal(attached, []string{u.PolicyName}) {
		if err := r.adm.SetPolicy(ctx, u.PolicyName, u.AccessKey, false); err != nil {
			return res, fmt.Errorf("user %s: attach policy %s: %w", u.AccessKey, u.PolicyName, err)
		}
		if exists {
			if others := slices.DeleteFunc(attached, func(p string) bool { return p == u.PolicyName }); len(others) > 0 {
				res.Changes = append(res.Changes, "detached policies "+strings.Join(others, ","))
			}
			if !slices.Contains(splitPolicies(info.PolicyName), u.PolicyName) {
				res.Changes = append(res.Changes, "attached policy "+u.PolicyName)
			}
		}
	}
	if res.Action == outcome.Unchanged && len(res.Changes) > 0 {
		res.Action = outcome.Updated
	}
	return res, nil
}

// secretKeyValid signs a harmless request (ListBuckets) with the user's key
// from its file: a signature or unknown-key error means the server holds
// another key, i.e. the file changed since the last run.
func (r *userReconciler) secretKeyValid(ctx context.Context, u PlannedUser) (bool, error) {
	cl, err := r.conn.s3ClientAs(credentials.NewStaticV4(u.AccessKey, u.secretKey, ""))
	if err != nil {
		return false, err
	}
	_, err = cl.ListBuckets(ctx)
	switch errorCode(err) {
	case "":
		if err != nil {
			return false, err
		}
		return true, nil
	case "AccessDenied":
		return true, nil // authenticated, just not allowed to list
	case "SignatureDoesNotMatch", "InvalidAccessKeyId":
		return false, nil
	default:
		return false, err
	}
}

func splitPolicies(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func describePolicyOwner(policyName string, current *policyDoc, owner string, marked bool) string {
	switch {
	case current == nil:
		return "the user exists without s3-init's policy " + policyName
	case !marked:
		return "policy " + policyName + " has no kommons ownership marker"
	default:
		return "policy " + policyName + "'s marker names scope " + owner
	}
}
