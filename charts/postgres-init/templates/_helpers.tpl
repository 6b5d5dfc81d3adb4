{{/*
Internal helpers of postgres-init. The public named templates (for module
charts) are in _library.tpl; the physical-name function is in _names.tpl.

Every helper that a parent chart may call takes a dict with "root" (the
caller's root context, `$`) and optionally "alias" (the dependency's alias in
the parent's Chart.yaml; default "postgresInit", then "postgres-init").
postgres-init.resolve turns that into this chart's own context, whose .Values
are postgres-init's values and whose .Chart is postgres-init's Chart.yaml,
through Helm's `.Subcharts` (a parent's .Values are not the subchart's).
*/}}

{{/*
postgres-init.resolve: (dict "in" ARGS "out" DICT) sets DICT.ctx to the
postgres-init context for ARGS (see above). Output: nothing.
*/}}
{{- define "postgres-init.resolve" -}}
{{- $root := required "postgres-init: pass the caller's root context as \"root\", e.g. (dict \"root\" $ ...)" .in.root -}}
{{- $ctx := $root -}}
{{- $subs := $root.Subcharts | default dict -}}
{{- $found := false -}}
{{- $names := list "postgresInit" "postgres-init" -}}
{{- if .in.alias -}}{{- $names = list .in.alias -}}{{- end -}}
{{- range $n := $names -}}
{{- if and (not $found) (hasKey $subs $n) -}}
{{- $ctx = index $subs $n -}}
{{- $found = true -}}
{{- end -}}
{{- end -}}
{{- if not (hasKey $ctx.Values "roles") -}}
{{- fail (printf "postgres-init: no postgres-init values found from chart %q: depend on postgres-init with alias postgresInit, or pass its alias as \"alias\"" $root.Chart.Name) -}}
{{- end -}}
{{- $_ := set .out "ctx" $ctx -}}
{{- end -}}

{{/* postgres-init.prefix (ctx): prefix of every object name. */}}
{{- define "postgres-init.prefix" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride -}}
{{- else -}}
{{- printf "%s-pg" .Release.Name | trunc 56 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* postgres-init.scopeNamespace (ctx) */}}
{{- define "postgres-init.scopeNamespace" -}}
{{- .Values.scope.namespace | default .Release.Namespace -}}
{{- end -}}

{{/* postgres-init.scopeRelease (ctx) */}}
{{- define "postgres-init.scopeRelease" -}}
{{- .Values.scope.release | default .Release.Name -}}
{{- end -}}

{{/*
postgres-init.image (ctx): the kommons-tools image of this chart's values (image.*, each
non-empty field of global.kommonsTools.image replacing its own; global.imageRegistry).
{{ include "postgres-init.image" $ctx }}
*/}}
{{- define "postgres-init.image" -}}
{{- include "kommons-common.images.kommonsTools" (dict "image" .Values.image "global" .Values.global "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{/*
postgres-init.selectorLabels (ctx): kommons-common's selector labels under this chart's own name
(.Chart.Name is the alias when a module chart depends on postgres-init with one).
{{ include "postgres-init.selectorLabels" $ctx }}
*/}}
{{- define "postgres-init.selectorLabels" -}}
{{- include "kommons-common.labels.matchLabels" (dict "context" . "chartName" "postgres-init") -}}
{{- end -}}

{{/*
postgres-init.labels (ctx): kommons-common's standard labels under this chart's own name.
{{ include "postgres-init.labels" $ctx }}
*/}}
{{- define "postgres-init.labels" -}}
{{- include "kommons-common.labels.standard" (dict "context" . "chartName" "postgres-init") -}}
{{- end -}}

{{/*
postgres-init.roleEntry: (dict "ctx" CTX "role" NAME "out" DICT) sets DICT.role
to the entry of roles named NAME, or fails naming the value.
*/}}
{{- define "postgres-init.roleEntry" -}}
{{- $name := required "postgres-init: \"role\" is required (a logical role name from roles)" .role -}}
{{- $found := dict -}}
{{- range .ctx.Values.roles -}}
{{- if eq .name $name -}}{{- $found = . -}}{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "postgres-init: role %q is not in the postgres-init values' roles (known: %s)" $name (include "postgres-init.names" .ctx.Values.roles)) -}}
{{- end -}}
{{- $_ := set .out "role" $found -}}
{{- end -}}

{{/* postgres-init.names (list of entries): their names, comma-separated. */}}
{{- define "postgres-init.names" -}}
{{- $n := list -}}
{{- range . -}}{{- $n = append $n .name -}}{{- end -}}
{{- join ", " $n -}}
{{- end -}}

{{/* postgres-init.roleSecretName: (dict "ctx" CTX "role" ENTRY) */}}
{{- define "postgres-init.roleSecretName" -}}
{{- .role.existingSecret | default (printf "%s-%s" (include "postgres-init.prefix" .ctx) (.role.name | replace "_" "-")) -}}
{{- end -}}

{{/* postgres-init.rolePasswordKey: (ENTRY) */}}
{{- define "postgres-init.rolePasswordKey" -}}
{{- if .existingSecret -}}{{- .existingSecretPasswordKey | default "password" -}}{{- else -}}password{{- end -}}
{{- end -}}

{{/* postgres-init.roleDatabase: (dict "ctx" CTX "role" ENTRY): the logical database of a role's connection facts. */}}
{{- define "postgres-init.roleDatabase" -}}
{{- $db := .role.database | default "" -}}
{{- if not $db -}}
{{- range .ctx.Values.databases -}}
{{- if and (not $db) (eq .owner $.role.name) -}}{{- $db = .name -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- $db -}}
{{- end -}}

{{/*
postgres-init.validate (ctx): the checks JSON Schema cannot express (unique
names, owners that exist), failing with the value's path.
*/}}
{{- define "postgres-init.validate" -}}
{{- if .Values.provisioner.requireSecret -}}
{{- /* Listing the namespace's Secrets answers only when Helm talks to a
cluster (not in helm template / --dry-run=client), where it is allowed:
Helm keeps its release records in Secrets of this namespace. */ -}}
{{- $online := lookup "v1" "Secret" .Release.Namespace "" -}}
{{- if and $online (not (lookup "v1" "Secret" .Release.Namespace .Values.provisioner.secretName)) -}}
{{- fail (printf "postgres-init: Secret %q not found in namespace %q: this namespace is not a tenant of charts/commons (add it to commons' tenants and upgrade commons), or set provisioner.secretName (provisioner.requireSecret=false skips this check)" .Values.provisioner.secretName .Release.Namespace) -}}
{{- end -}}
{{- end -}}
{{- if and (empty .Values.roles) (empty .Values.databases) -}}
{{- fail "postgres-init: roles and databases are both empty: nothing to provision" -}}
{{- end -}}
{{- $roles := dict -}}
{{- range $i, $r := .Values.roles -}}
{{- if hasKey $roles $r.name -}}{{- fail (printf "postgres-init: roles[%d].name: duplicate role %q" $i $r.name) -}}{{- end -}}
{{- $_ := set $roles $r.name true -}}
{{- end -}}
{{- $dbs := dict -}}
{{- range $i, $d := .Values.databases -}}
{{- if hasKey $dbs $d.name -}}{{- fail (printf "postgres-init: databases[%d].name: duplicate database %q" $i $d.name) -}}{{- end -}}
{{- $_ := set $dbs $d.name true -}}
{{- if not (hasKey $roles $d.owner) -}}{{- fail (printf "postgres-init: databases[%d].owner: %q is not a role in roles" $i $d.owner) -}}{{- end -}}
{{- end -}}
{{- range $i, $r := .Values.roles -}}
{{- if and $r.database (not (hasKey $dbs $r.database)) -}}{{- fail (printf "postgres-init: roles[%d].database: %q is not a database in databases" $i $r.database) -}}{{- end -}}
{{- end -}}
{{- end -}}

{{/* postgres-init.caMountPath: where pods mount the tenant Secret's ca.crt (PGSSLROOTCERT's directory). */}}
{{- define "postgres-init.caMountPath" -}}
/etc/kommons/postgres-ca
{{- end -}}

{{/* postgres-init.caVolumeOf: (dict "ctx" CTX "volumeName" NAME): the CA volume of postgres-init.caVolume. */}}
{{- define "postgres-init.caVolumeOf" -}}
{{- $p := .ctx.Values.provisioner -}}
- name: {{ .volumeName | default "postgres-ca" }}
  secret:
    secretName: {{ $p.secretName | quote }}
    optional: true
    defaultMode: 0444
    items:
      - key: {{ $p.keys.ca | quote }}
        path: ca.crt
{{- end -}}

{{/* postgres-init.sslRootCertEnv (ctx): PGSSLROOTCERT from the provisioner Secret, optional (an env list entry). */}}
{{- define "postgres-init.sslRootCertEnv" -}}
{{- $p := .Values.provisioner -}}
- name: PGSSLROOTCERT
  valueFrom:
    secretKeyRef: {name: {{ $p.secretName | quote }}, key: {{ $p.keys.sslrootcert | quote }}, optional: true}
{{- end -}}

{{/* postgres-init.specYAML (ctx): pg-init's spec file, one-to-one from the values. */}}
{{- define "postgres-init.specYAML" -}}
{{- $roles := list -}}
{{- range .Values.roles -}}
{{- $limit := -1 -}}
{{- if and (hasKey . "connectionLimit") (not (kindIs "invalid" .connectionLimit)) -}}{{- $limit = int .connectionLimit -}}{{- end -}}
{{- $roles = append $roles (dict "name" .name "passwordEnv" (include "postgres-init.passwordEnv" .name) "connectionLimit" $limit "reclaimPolicy" (.reclaimPolicy | default "retain")) -}}
{{- end -}}
{{- $dbs := list -}}
{{- range .Values.databases -}}
{{- $d := dict "name" .name "owner" .owner "reclaimPolicy" (.reclaimPolicy | default "retain") -}}
{{- if .extensions -}}{{- $_ := set $d "extensions" .extensions -}}{{- end -}}
{{- if .schemas -}}{{- $_ := set $d "schemas" .schemas -}}{{- end -}}
{{- $dbs = append $dbs $d -}}
{{- end -}}
{{- $spec := dict "scope" (dict "namespace" (include "postgres-init.scopeNamespace" .) "release" (include "postgres-init.scopeRelease" .)) -}}
{{- if $roles -}}{{- $_ := set $spec "roles" $roles -}}{{- end -}}
{{- if $dbs -}}{{- $_ := set $spec "databases" $dbs -}}{{- end -}}
{{- toYaml $spec -}}
{{- end -}}

{{/*
postgres-init.hookAnnotations: (dict "ctx" CTX "weight" N): hook annotations
in hook mode, nothing otherwise.
*/}}
{{- define "postgres-init.hookAnnotations" -}}
{{- if .ctx.Values.hook -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation
{{- end -}}
{{- end -}}

{{/* postgres-init.securityContext (ctx): the container security context. */}}
{{- define "postgres-init.securityContext" -}}
{{- toYaml .Values.job.securityContext -}}
{{- end -}}

{{/*
postgres-init.jobSpec (ctx): the Job's spec. Its text, with pg-init's spec
and job.revision, is hashed into the Job's name, so any change runs a new Job.
*/}}
{{- define "postgres-init.jobSpec" -}}
backoffLimit: {{ .Values.job.backoffLimit }}
activeDeadlineSeconds: {{ .Values.job.activeDeadlineSeconds }}
{{- if not (kindIs "invalid" .Values.job.ttlSecondsAfterFinished) }}
ttlSecondsAfterFinished: {{ .Values.job.ttlSecondsAfterFinished }}
{{- end }}
template:
  metadata:
    labels:
      {{- include "postgres-init.labels" . | nindent 6 }}
      app.kubernetes.io/component: provisioning
      {{- with .Values.job.podLabels }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with .Values.job.podAnnotations }}
    annotations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  spec:
    {{- include "postgres-init.jobPodSpec" . | nindent 4 }}
{{- end -}}

{{/* postgres-init.jobPodSpec (ctx): the pg-init pod spec. */}}
{{- define "postgres-init.jobPodSpec" -}}
{{- $ctx := . -}}
{{- $p := .Values.provisioner -}}
{{- $secretInit := include "postgres-init.secretInitSpec" . -}}
restartPolicy: Never
automountServiceAccountToken: false
enableServiceLinks: false
{{- if $secretInit }}
serviceAccountName: {{ include "postgres-init.secretInitName" . }}
{{- end }}
{{- include "kommons-common.images.pullSecrets" (dict "secrets" .Values.imagePullSecrets "global" .Values.global) }}
securityContext:
  {{- toYaml .Values.job.podSecurityContext | nindent 2 }}
{{- include "kommons-common.scheduling" (dict "values" .Values.job) }}
{{- if $secretInit }}
initContainers:
  {{- /* Writes the roles' connection Secrets (passwords generated once, in the cluster). */}}
  {{- include "kommons-common.secretInit.container" (dict "image" (include "postgres-init.image" . | quote) "pullPolicy" .Values.image.pullPolicy "securityContext" .Values.job.securityContext "resources" .Values.job.resources "deadline" .Values.job.deadline) | nindent 2 }}
{{- end }}
containers:
  - name: pg-init
    image: {{ include "postgres-init.image" . | quote }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command: ["/usr/local/bin/pg-init"]
    args:
      - "--spec=/etc/pg-init/spec/spec.yaml"
      - "--output=json"
      - {{ printf "--deadline=%s" .Values.job.deadline | quote }}
      - "--log-format=json"
      - {{ printf "--log-level=%s" .Values.job.logLevel | quote }}
      {{- if .Values.job.adopt }}
      - "--adopt"
      {{- end }}
      {{- if .Values.job.prune }}
      - "--prune"
      {{- end }}
    env:
      - name: PGHOST
        valueFrom:
          secretKeyRef: {name: {{ $p.secretName | quote }}, key: {{ $p.keys.host | quote }}}
      - name: PGPORT
        valueFrom:
          secretKeyRef: {name: {{ $p.secretName | quote }}, key: {{ $p.keys.port | quote }}}
      - name: PGSSLMODE
        valueFrom:
          secretKeyRef: {name: {{ $p.secretName | quote }}, key: {{ $p.keys.sslmode | quote }}}
      {{- include "postgres-init.sslRootCertEnv" . | nindent 6 }}
      - name: PGUSER
        valueFrom:
          secretKeyRef: {name: {{ $p.secretName | quote }}, key: {{ $p.keys.username | quote }}}
      - name: PGPASSWORD
        valueFrom:
          secretKeyRef: {name: {{ $p.secretName | quote }}, key: {{ $p.keys.password | quote }}}
      {{- with $p.keys.database }}
      - name: PGDATABASE
        valueFrom:
          secretKeyRef: {name: {{ $p.secretName | quote }}, key: {{ . | quote }}}
      {{- end }}
      {{- with $p.keys.poolerRole }}
      - name: PG_INIT_POOLER_ROLE
        valueFrom:
          secretKeyRef: {name: {{ $p.secretName | quote }}, key: {{ . | quote }}, optional: true}
      {{- end }}
      {{- /* Each role's password through env, resolved when this container
      starts, after secret-init wrote the Secrets (a Secret volume would be
      set up before the init container runs). */}}
      {{- range .Values.roles }}
      - name: {{ include "postgres-init.passwordEnv" .name }}
        valueFrom:
          secretKeyRef: {name: {{ include "postgres-init.roleSecretName" (dict "ctx" $ctx "role" .) | quote }}, key: {{ include "postgres-init.rolePasswordKey" . | quote }}}
      {{- end }}
    volumeMounts:
      - name: spec
        mountPath: /etc/pg-init/spec
        readOnly: true
      {{- include "postgres-init.caVolumeMount" (dict) | nindent 6 }}
    securityContext:
      {{- toYaml .Values.job.securityContext | nindent 6 }}
    resources:
      {{- toYaml .Values.job.resources | nindent 6 }}
volumes:
  - name: spec
    configMap:
      name: {{ include "postgres-init.prefix" . }}-init-spec
  {{- include "postgres-init.caVolumeOf" (dict "ctx" .) | nindent 2 }}
  {{- if $secretInit }}
  {{- include "kommons-common.secretInit.volumes" (dict "configMap" (include "postgres-init.secretInitName" .)) | nindent 2 }}
  {{- end }}
{{- end -}}
