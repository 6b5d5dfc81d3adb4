package pgprovision

// What pg-init observes on the server: the inputs of the decisions
// (decide.go, ownership.go), read by roles.go, databases.go, inside.go and
// prune.go.

// roleState is a role as the server has it.
type roleState struct {
	oid                                                        uint32
	super, createRole, createDB, canLogin, replication, bypass bool
	connLimit                                                  int
	comment                                                    *string
	verifier                                                   *string // rolpassword; read only by a superuser admin
	verifierMatches                                            *bool   // verifier checked against the planned password
	control                                                    roleControl
}

// databaseState is a database as the server has it.
type databaseState struct {
	owner                     string
	comment                   *string
	publicConnect, publicTemp bool
	ownerConnect              bool
	poolerConnect             bool // the pooler role (Options.PoolerRole) may connect; true when none is asked for or it does not exist
}

// markedObject is a role or database carrying some pg-init marker.
type markedObject struct {
	name, owner string // owner: for databases, the owning role
	marker      Marker
	role        roleState // for roles: attributes and control, as read by roleColumns
}

// adminFacts describes the admin connection.
type adminFacts struct {
	user          string
	superuser     bool
	createRole    bool
	createDB      bool
	serverVersion int // server_version_num
	database      string
}

// deref is *s, or "" for nil.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// insideState is what a database holds of the plan's extensions and
// schemas, read over a connection to it.
type insideState struct {
	extensions  map[string]bool   // installed
	fixedSchema map[string]bool   // the extension's control file names its schema
	schemaOwner map[string]string // existing schemas, by name
}

// passwordFact is what pg-init found out about a role's password.
type passwordFact struct {
	same bool
	how  string // why it is set again: "changed", "none set", "could not be verified by logging in"
}
