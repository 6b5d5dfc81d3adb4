package s3provision

import (
	"strings"
)

// Bucket marker tags: s3-init marks every bucket it manages with these
// bucket tags; a bucket whose TagScope names another scope, or that has no
// marker, is refused unless --adopt.
const (
	TagManagedBy     = "kommons.io/managed-by"
	TagScope         = "kommons.io/scope"
	TagReclaimPolicy = "kommons.io/reclaim-policy"
	// ManagedBy is the value of TagManagedBy.
	ManagedBy = "s3-init"
)

// markerTags is the marker of a bucket of scope.
func markerTags(scope Scope, reclaimPolicy string) map[string]string {
	return map[string]string{TagManagedBy: ManagedBy, TagScope: scope.String(), TagReclaimPolicy: reclaimPolicy}
}

// ownerOfTags reads a bucket's tags: ok is false when they hold no s3-init
// marker, else scope is the scope they name.
func ownerOfTags(tags map[string]string) (scope string, ok bool) {
	if tags[TagManagedBy] != ManagedBy || tags[TagScope] == "" {
		return "", false
	}
	return tags[TagScope], true
}

// Policy markers: the first statement's Sid of every canned policy s3-init
// maintains is PolicyMarkerPrefix + "scope=<ns>/<release> reclaimPolicy=<p>".
const PolicyMarkerPrefix = "kommons.io/s3-init "

func policyMarker(scope Scope, reclaimPolicy string) string {
	return PolicyMarkerPrefix + "scope=" + scope.String() + " reclaimPolicy=" + reclaimPolicy
}

// ownerOfPolicyMarker parses a Sid written by policyMarker.
func ownerOfPolicyMarker(sid string) (scope string, ok bool) {
	rest, found := strings.CutPrefix(sid, PolicyMarkerPrefix)
	if !found {
		return "", false
	}
	for _, f := range strings.Fields(rest) {
		if v, found := strings.CutPrefix(f, "scope="); found && v != "" {
			return v, true
		}
	}
	return "", false
}
