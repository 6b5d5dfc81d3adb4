{{/*
Public named templates for module charts (documented in README.md). Each takes
a dict with "root" (the caller's `$`) and optionally "alias" (the dependency's
alias; default postgresInit, then postgres-init). Logical names ("role",
"database") are those of the postgres-init values.
*/}}

{{/*
postgres-init.roleName: the physical PostgreSQL role name.
  {{ include "postgres-init.roleName" (dict "root" $ "role" "app") }}
*/}}
{{- define "postgres-init.roleName" -}}
{{- $s := dict -}}
{{- include "postgres-init.resolve" (dict "in" . "out" $s) -}}
{{- $r := dict -}}
{{- include "postgres-init.roleEntry" (dict "ctx" $s.ctx "role" .role "out" $r) -}}
{{- include "postgres-init.physicalName" (dict "namespace" (include "postgres-init.scopeNamespace" $s.ctx) "release" (include "postgres-init.scopeRelease" $s.ctx) "name" $r.role.name) -}}
{{- end -}}

{{/*
postgres-init.databaseName: the physical PostgreSQL database name.
  {{ include "postgres-init.databaseName" (dict "root" $ "database" "app") }}
*/}}
{{- define "postgres-init.databaseName" -}}
{{- $s := dict -}}
{{- include "postgres-init.resolve" (dict "in" . "out" $s) -}}
{{- $name := required "postgres-init.databaseName: \"database\" is required" .database -}}
{{- $found := false -}}
{{- range $s.ctx.Values.databases -}}{{- if eq .name $name -}}{{- $found = true -}}{{- end -}}{{- end -}}
{{- if not $found -}}
{{- fail (printf "postgres-init: database %q is not in the postgres-init values' databases (known: %s)" $name (include "postgres-init.names" $s.ctx.Values.databases)) -}}
{{- end -}}
{{- include "postgres-init.physicalName" (dict "namespace" (include "postgres-init.scopeNamespace" $s.ctx) "release" (include "postgres-init.scopeRelease" $s.ctx) "name" $name) -}}
{{- end -}}

{{/*
postgres-init.credentialsSecretName: the Secret holding a role's password
(the generated connection Secret, or the role's existingSecret).
  {{ include "postgres-init.credentialsSecretName" (dict "root" $ "role" "app") }}
*/}}
{{- define "postgres-init.credentialsSecretName" -}}
{{- $s := dict -}}
{{- include "postgres-init.resolve" (dict "in" . "out" $s) -}}
{{- $r := dict -}}
{{- include "postgres-init.roleEntry" (dict "ctx" $s.ctx "role" .role "out" $r) -}}
{{- include "postgres-init.roleSecretName" (dict "ctx" $s.ctx "role" $r.role) -}}
{{- end -}}

{{/*
postgres-init.credentialsPasswordKey: the key of the password in that Secret.
*/}}
{{- define "postgres-init.credentialsPasswordKey" -}}
{{- $s := dict -}}
{{- include "postgres-init.resolve" (dict "in" . "out" $s) -}}
{{- $r := dict -}}
{{- include "postgres-init.roleEntry" (dict "ctx" $s.ctx "role" .role "out" $r) -}}
{{- include "postgres-init.rolePasswordKey" $r.role -}}
{{- end -}}

{{/*
postgres-init.connectionEnv: libpq environment (a list of env entries) for
role "role" on database "database": PGHOST, PGPORT, PGSSLMODE and, when the
tenant has a CA, PGSSLROOTCERT (optional) from the provisioner Secret
(connection facts only, never its credentials), PGUSER and PGDATABASE as
physical names, PGPASSWORD from the role's Secret. PGSSLROOTCERT names a file
under postgres-init.caVolumeMount: mount postgres-init.caVolume in the pod.
  env:
    {{- include "postgres-init.connectionEnv" (dict "root" $ "role" "app" "database" "app") | nindent 4 }}
*/}}
{{- define "postgres-init.connectionEnv" -}}
{{- $s := dict -}}
{{- include "postgres-init.resolve" (dict "in" . "out" $s) -}}
{{- $ctx := $s.ctx -}}
{{- $r := dict -}}
{{- include "postgres-init.roleEntry" (dict "ctx" $ctx "role" .role "out" $r) -}}
{{- $p := $ctx.Values.provisioner -}}
- name: PGHOST
  valueFrom:
    secretKeyRef: {name: {{ $p.secretName | quote }}, key: {{ $ctx.Values.connection.hostKey | default $p.keys.host | quote }}}
- name: PGPORT
  valueFrom:
    secretKeyRef: {name: {{ $p.secretName | quote }}, key: {{ $ctx.Values.connection.portKey | default $p.keys.port | quote }}}
- name: PGSSLMODE
  valueFrom:
    secretKeyRef: {name: {{ $p.secretName | quote }}, key: {{ $p.keys.sslmode | quote }}}
{{ include "postgres-init.sslRootCertEnv" $ctx }}
- name: PGUSER
  value: {{ include "postgres-init.roleName" (dict "root" .root "alias" .alias "role" .role) | quote }}
- name: PGDATABASE
  value: {{ include "postgres-init.databaseName" (dict "root" .root "alias" .alias "database" (required "postgres-init.connectionEnv: \"database\" is required" .database)) | quote }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "postgres-init.roleSecretName" (dict "ctx" $ctx "role" $r.role) | quote }}, key: {{ include "postgres-init.rolePasswordKey" $r.role | quote }}}
{{- end -}}

{{/*
postgres-init.credentialsVolume: a pod volume (list entry) with the role's
Secret; "volumeName" defaults to pg-<role>.
  volumes:
    {{- include "postgres-init.credentialsVolume" (dict "root" $ "role" "app") | nindent 4 }}
*/}}
{{- define "postgres-init.credentialsVolume" -}}
{{- $s := dict -}}
{{- include "postgres-init.resolve" (dict "in" . "out" $s) -}}
{{- $r := dict -}}
{{- include "postgres-init.roleEntry" (dict "ctx" $s.ctx "role" .role "out" $r) -}}
- name: {{ .volumeName | default (printf "pg-%s" ($r.role.name | replace "_" "-")) }}
  secret:
    secretName: {{ include "postgres-init.roleSecretName" (dict "ctx" $s.ctx "role" $r.role) }}
    defaultMode: 0440
{{- end -}}

{{/*
postgres-init.credentialsVolumeMount: the matching volumeMount (list entry),
read-only at "mountPath" (default /etc/kommons/postgres/<role>); the password is
the file named by postgres-init.credentialsPasswordKey.
*/}}
{{- define "postgres-init.credentialsVolumeMount" -}}
- name: {{ .volumeName | default (printf "pg-%s" (.role | replace "_" "-")) }}
  mountPath: {{ .mountPath | default (printf "/etc/kommons/postgres/%s" .role) }}
  readOnly: true
{{- end -}}

{{/*
postgres-init.caVolume: a pod volume (list entry) with the CA certificate of
the PostgreSQL server from the tenant Secret (commons writes its `ca.crt` when
the server's CA is known: verify-full). Optional: a tenant without a CA (sslmode
disable or require) mounts an empty directory. "volumeName" defaults to postgres-ca.
Every pod that uses postgres-init.connectionEnv or
postgres-init.waitForPgInitContainer needs it.
  volumes:
    {{- include "postgres-init.caVolume" (dict "root" $) | nindent 4 }}
*/}}
{{- define "postgres-init.caVolume" -}}
{{- $s := dict -}}
{{- include "postgres-init.resolve" (dict "in" . "out" $s) -}}
{{- include "postgres-init.caVolumeOf" (dict "ctx" $s.ctx "volumeName" .volumeName) -}}
{{- end -}}

{{/*
postgres-init.caVolumeMount: the matching volumeMount (list entry), read-only
at /etc/kommons/postgres-ca, where PGSSLROOTCERT (from the tenant Secret) points:
/etc/kommons/postgres-ca/ca.crt.
  volumeMounts:
    {{- include "postgres-init.caVolumeMount" (dict "root" $) | nindent 4 }}
*/}}
{{- define "postgres-init.caVolumeMount" -}}
- name: {{ .volumeName | default "postgres-ca" }}
  mountPath: {{ include "postgres-init.caMountPath" . }}
  readOnly: true
{{- end -}}

{{/*
postgres-init.waitForPgInitContainer: the wait-for-pg init container (a list
entry) waiting at level "level" (default database) until role "role" can
connect to database "database"; "name" defaults to wait-for-pg, "timeout" to
waitForPg.timeout. It mounts postgres-init.caVolume (add it to the pod's
volumes; "caVolume" false leaves the mount out, for a pod without it, which
then cannot use a tenant's verify-full).
  initContainers:
    {{- include "postgres-init.waitForPgInitContainer" (dict "root" $ "role" "app" "database" "app") | nindent 4 }}
*/}}
{{- define "postgres-init.waitForPgInitContainer" -}}
{{- $s := dict -}}
{{- include "postgres-init.resolve" (dict "in" . "out" $s) -}}
{{- $ctx := $s.ctx -}}
- name: {{ .name | default "wait-for-pg" }}
  image: {{ include "postgres-init.image" $ctx | quote }}
  imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
  command: ["/usr/local/bin/wait-for-pg"]
  args:
    - {{ printf "--level=%s" (.level | default "database") | quote }}
    - {{ printf "--timeout=%s" (.timeout | default $ctx.Values.waitForPg.timeout) | quote }}
    - "--log-format=json"
  env:
    {{- include "postgres-init.connectionEnv" . | nindent 4 }}
  {{- if not (eq .caVolume false) }}
  volumeMounts:
    {{- include "postgres-init.caVolumeMount" . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "postgres-init.securityContext" $ctx | nindent 4 }}
  resources:
    {{- toYaml $ctx.Values.waitForPg.resources | nindent 4 }}
{{- end -}}

{{/*
postgres-init.connectionSecret: one entry of the secret-init spec (YAML, no
secret value) for a Secret in CloudNativePG's `-app` layout (username, user,
password, host, port, sslmode, dbname, uri, jdbc-uri, pgpass) of role "role"
on "database" (default: the role's database, else the first it owns). The
pg-init Job's secret-init init container writes it: the password is
generated once in the cluster and never overwritten (a role with
existingSecret, or a "name" other than the role's own Secret, copies it from
that Secret instead); host, port and sslmode are values.connection, else
copied from the provisioner Secret at run time; the URIs and pgpass are
templates over those keys. postgres-init lists one for every role without
existingSecret, and one for each values.connectionSecrets entry ("name"
overrides the Secret name). Module charts add Secrets through
connectionSecrets; this define is public for reading the layout.
  {{ include "postgres-init.connectionSecret" (dict "root" $ "role" "app") | fromYaml }}
*/}}
{{- define "postgres-init.connectionSecret" -}}
{{- $s := dict -}}
{{- include "postgres-init.resolve" (dict "in" . "out" $s) -}}
{{- include "postgres-init.connectionSecretEntry" (dict "ctx" $s.ctx "role" .role "database" .database "name" .name) -}}
{{- end -}}

{{/*
postgres-init.imagePullSecrets: kept for module charts written against earlier releases; it is
kommons-common.images.pullSecrets (the pod's own "secrets", names or {name: ...}, then
global.imagePullSecrets, each name once), which new charts call directly.
  {{- include "postgres-init.imagePullSecrets" (dict "secrets" .Values.imagePullSecrets "global" .Values.global) | nindent 2 }}
*/}}
{{- define "postgres-init.imagePullSecrets" -}}
{{- include "kommons-common.images.pullSecrets" . -}}
{{- end -}}
