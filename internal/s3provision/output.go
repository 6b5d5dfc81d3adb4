package s3provision

// Output is s3-init's machine-readable result (--output json): endpoint,
// bucket names and access keys, never a secret key.
type Output struct {
	Scope    Scope          `json:"scope"`
	Endpoint EndpointFacts  `json:"endpoint"`
	Buckets  []BucketOutput `json:"buckets"`
	Users    []UserOutput   `json:"users"`
	// Pruned lists this scope's objects the spec no longer has (--prune):
	// deleted, or retained with the reason.
	Pruned []ObjectResult `json:"pruned,omitempty"`
}

// EndpointFacts says where applications connect.
type EndpointFacts struct {
	URL       string `json:"url"`
	Region    string `json:"region"`
	PathStyle bool   `json:"pathStyle"`
}

// BucketOutput is one bucket of the plan.
type BucketOutput struct {
	Name          string `json:"name"`
	Bucket        string `json:"bucket"`
	ReclaimPolicy string `json:"reclaimPolicy"`
	Action        Action `json:"action"`
}

// UserOutput is one user of the plan.
type UserOutput struct {
	Name          string   `json:"name"`
	AccessKey     string   `json:"accessKey"`
	SecretKeyFile string   `json:"secretKeyFile"`
	Policy        string   `json:"policy"`
	Buckets       []string `json:"buckets"`
	Action        Action   `json:"action"`
}

// NewOutput combines a plan, the connection (endpoint facts only) and a
// run's report.
func NewOutput(plan *Plan, conn Connection, rep *Report) Output {
	region := conn.Region
	if region == "" {
		region = "us-east-1"
	}
	out := Output{Scope: plan.Scope, Endpoint: EndpointFacts{URL: conn.Endpoint, Region: region, PathStyle: conn.PathStyle},
		Buckets: []BucketOutput{}, Users: []UserOutput{}}
	action := func(kind, phys string) Action {
		if rep == nil {
			return ""
		}
		o, _ := rep.Find(kind, phys)
		return o.Action
	}
	for _, b := range plan.Buckets {
		out.Buckets = append(out.Buckets, BucketOutput{Name: b.Name, Bucket: b.Physical, ReclaimPolicy: b.ReclaimPolicy,
			Action: action(KindBucket, b.Physical)})
	}
	for _, u := range plan.Users {
		out.Users = append(out.Users, UserOutput{Name: u.Name, AccessKey: u.AccessKey, SecretKeyFile: u.SecretKeyFile,
			Policy: u.PolicyName, Buckets: append([]string{}, u.PhysicalBuckets...), Action: action(KindUser, u.AccessKey)})
	}
	if rep != nil {
		out.Pruned = rep.Pruned
	}
	return out
}
