package policy

// Object is what a Match is evaluated against.
type Object struct {
	Kind      string
	Name      string // metadata.name, or metadata.generateName when there is no name
	Namespace string
	// Labels holds the object's labels and, for workloads, the pod template's.
	Labels []map[string]string
	// ClaimName is set for storage matching: the claim's own name.
	ClaimName string
}

// Matches reports whether o satisfies every set field of m.
func (m Match) Matches(o Object) bool {
	if len(m.Kinds) > 0 && !anyEqual(m.Kinds, o.Kind) {
		return false
	}
	if len(m.Namespaces) > 0 && !anyGlob(m.Namespaces, o.Namespace) {
		return false
	}
	if len(m.Names) > 0 && !anyGlob(m.Names, o.Name) {
		return false
	}
	if len(m.ClaimNames) > 0 && !anyGlob(m.ClaimNames, o.ClaimName) {
		return false
	}
	if len(m.Labels) > 0 {
		ok := false
		for _, set := range o.Labels {
			if labelsMatch(m.Labels, set) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func labelsMatch(want, have map[string]string) bool {
	for k, pattern := range want {
		v, ok := have[k]
		if !ok || !Glob(pattern, v) {
			return false
		}
	}
	return true
}

func anyEqual(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func anyGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if Glob(p, s) {
			return true
		}
	}
	return false
}

// Glob matches s against pattern, where '*' matches any run of characters
// (including '/' and '.') and '?' exactly one; everything else is literal.
func Glob(pattern, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx, nextSx = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextSx > 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}
