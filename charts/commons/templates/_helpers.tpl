{{/*
Helpers in the style of Bitnami's `common` library: one helper per concern.
*/}}

{{/*
The shared parts (names, labels, images, image pull secrets, storage class, scheduling,
generated secrets) are the kommons-common library's (charts/kommons-common); these helpers
hold what is commons' own.
*/}}

{{/* ---------- names ---------- */}}

{{/*
commons.names.fullname: prefix of every resource name (kommons-common.names.fullname, at most
40 characters so that the component suffixes fit in 63).
{{ include "commons.names.fullname" $ }}
*/}}
{{- define "commons.names.fullname" -}}
{{- include "kommons-common.names.fullname" (dict "context" . "max" 40) -}}
{{- end -}}

{{/*
commons.names.component: "<fullname>-<component>".
{{ include "commons.names.component" (dict "context" $ "component" "postgresql") }}
*/}}
{{- define "commons.names.component" -}}
{{- printf "%s-%s" (include "commons.names.fullname" .context) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* ---------- labels ---------- */}}

{{/*
commons.labels.standard: kommons-common's standard labels, then, with "workload" true
(StatefulSets and their pod templates), kommons.io/workload-class for the data-bearing
components (so that a post-renderer placement policy can select them), then commonLabels.
{{ include "commons.labels.standard" (dict "context" $ "component" "database" "workload" true) }}
*/}}
{{- define "commons.labels.standard" -}}
{{- include "kommons-common.labels.standard" (dict "context" .context "component" .component) }}
{{- if .workload }}
{{- include "commons.labels.workloadClass" .component }}
{{- end }}
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
commons.labels.workloadClass: kommons.io/workload-class for data-bearing components (leading newline included).
{{ include "commons.labels.workloadClass" "database" }}
*/}}
{{- define "commons.labels.workloadClass" -}}
{{- if has . (list "database" "object-store") }}
kommons.io/workload-class: {{ . }}
{{- end }}
{{- end -}}

{{/* ---------- images ---------- */}}

{{/*
commons.tools.image: the kommons-tools image of the Jobs (tools.image; global.kommonsTools.image
overrides it field by field).
{{ include "commons.tools.image" $ }}
*/}}
{{- define "commons.tools.image" -}}
{{- include "kommons-common.images.kommonsTools" (dict "image" .Values.tools.image "global" .Values.global "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{/* ---------- affinities ---------- */}}

{{/* commons.affinities.pod: pod anti-affinity for a preset (soft|hard). Usage: include "commons.affinities.pod" (dict "type" "soft" "component" "database" "context" $) */}}
{{- define "commons.affinities.pod" -}}
{{- if eq .type "soft" -}}
preferredDuringSchedulingIgnoredDuringExecution:
  - weight: 1
    podAffinityTerm:
      topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "kommons-common.labels.matchLabels" . | nindent 10 }}
{{- else if eq .type "hard" -}}
requiredDuringSchedulingIgnoredDuringExecution:
  - topologyKey: kubernetes.io/hostname
    labelSelector:
      matchLabels:
        {{- include "kommons-common.labels.matchLabels" . | nindent 8 }}
{{- end -}}
{{- end -}}

{{/* commons.affinities.node: node affinity for a preset {type, key, values}. Usage: include "commons.affinities.node" .Values.postgresql.nodeAffinityPreset */}}
{{- define "commons.affinities.node" -}}
{{- if eq .type "soft" -}}
preferredDuringSchedulingIgnoredDuringExecution:
  - weight: 1
    preference:
      matchExpressions:
        - key: {{ .key }}
          operator: In
          values: {{ toJson .values }}
{{- else if eq .type "hard" -}}
requiredDuringSchedulingIgnoredDuringExecution:
  nodeSelectorTerms:
    - matchExpressions:
        - key: {{ .key }}
          operator: In
          values: {{ toJson .values }}
{{- end -}}
{{- end -}}

{{/*
commons.affinities.affinity: the pod's affinity block: the component's `affinity` when set,
else its presets. Usage: include "commons.affinities.affinity" (dict "values" .Values.postgresql "component" "database" "context" $)
*/}}
{{- define "commons.affinities.affinity" -}}
{{- if .values.affinity -}}
affinity:
  {{- toYaml .values.affinity | nindent 2 }}
{{- else -}}
{{- $pod := include "commons.affinities.pod" (dict "type" .values.podAntiAffinityPreset "component" .component "context" .context) -}}
{{- $node := include "commons.affinities.node" .values.nodeAffinityPreset -}}
{{- if or $pod $node -}}
affinity:
  {{- with $pod }}
  podAntiAffinity:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with $node }}
  nodeAffinity:
    {{- . | nindent 4 }}
  {{- end }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
commons.scheduling: a component's placement: kommons-common.scheduling without its affinity,
then the affinity (the component's own, else its presets) and topology spread constraints.
{{ include "commons.scheduling" (dict "values" .Values.postgresql "component" "database" "context" $) }}
*/}}
{{- define "commons.scheduling" -}}
{{- include "kommons-common.scheduling" (dict "values" (omit .values "affinity")) }}
{{- with (include "commons.affinities.affinity" .) }}
{{ . }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* ---------- secrets ---------- */}}

{{/* The credentials Secrets are written by secret-init (secret-init.yaml), never rendered. */}}

{{/* ---------- PostgreSQL connection facts ---------- */}}

{{/*
commons.postgresql.mode: where PostgreSQL runs: postgresql.mode when set, else from the legacy
postgresql.bundled (false: external), else bundled.
{{ include "commons.postgresql.mode" $ }}
*/}}
{{- define "commons.postgresql.mode" -}}
{{- if .Values.postgresql.mode -}}
{{- .Values.postgresql.mode -}}
{{- else if and (hasKey .Values.postgresql "bundled") (not .Values.postgresql.bundled) -}}
external
{{- else -}}
bundled
{{- end -}}
{{- end -}}

{{/* commons.postgresql.bundled: "true" when PostgreSQL runs as this release's StatefulSet. */}}
{{- define "commons.postgresql.bundled" -}}
{{- if eq (include "commons.postgresql.mode" .) "bundled" }}true{{ end -}}
{{- end -}}

{{/* commons.postgresql.host: the host Jobs and tenants connect to (the client Service FQDN when bundled). */}}
{{- define "commons.postgresql.host" -}}
{{- if include "commons.postgresql.cnpg" . -}}
{{- printf "%s-rw.%s.svc.%s" (include "commons.postgresql.clusterName" .) .Release.Namespace .Values.clusterDomain -}}
{{- else if include "commons.postgresql.bundled" . -}}
{{- printf "%s.%s.svc.%s" (include "commons.names.component" (dict "context" . "component" "postgresql")) .Release.Namespace .Values.clusterDomain -}}
{{- else -}}
{{- required "postgresql.external.host is required in external mode (postgresql.mode external, or postgresql.bundled false)" .Values.postgresql.external.host -}}
{{- end -}}
{{- end -}}

{{- define "commons.postgresql.port" -}}
{{- if include "commons.postgresql.cnpg" . }}5432{{ else if include "commons.postgresql.bundled" . }}{{ .Values.postgresql.service.port }}{{ else }}{{ .Values.postgresql.external.port }}{{ end -}}
{{- end -}}

{{/* commons.postgresql.sslmode: of the commons Jobs: the bundled server without TLS (postgresql.tls.enabled false): disable; a CloudNativePG Cluster's certificate, the bundled server's with TLS, and an external server's when its CA is given (tls.ca, tls.caSecret or tls.caConfigMap) are checked against the CA (commons.postgresql.caVolume): verify-full (verify-ca when external.sslmode asks for it). */}}
{{- define "commons.postgresql.sslmode" -}}
{{- if or (include "commons.postgresql.cnpg" .) (include "commons.postgresql.bundledTLS" .) }}verify-full{{ else if include "commons.postgresql.bundled" . }}disable{{ else if include "commons.postgresql.externalCASource" . }}{{ ternary "verify-ca" "verify-full" (eq .Values.postgresql.external.sslmode "verify-ca") }}{{ else }}{{ .Values.postgresql.external.sslmode }}{{ end -}}
{{- end -}}

{{/* commons.postgresql.externalCA: the external server's CA certificate (PEM) when postgresql.external.tls.ca holds one, in external mode; else nothing. */}}
{{- define "commons.postgresql.externalCA" -}}
{{- if eq (include "commons.postgresql.mode" .) "external" -}}
{{- ((.Values.postgresql.external.tls | default dict).ca | default "") | trim -}}
{{- end -}}
{{- end -}}

{{/*
commons.postgresql.externalCASource: in external mode, where the server's CA comes from: "inline"
(postgresql.external.tls.ca), "secret" (tls.caSecret.name), "configMap" (tls.caConfigMap.name);
else nothing. Two of them set is an error naming both.
*/}}
{{- define "commons.postgresql.externalCASource" -}}
{{- if eq (include "commons.postgresql.mode" .) "external" -}}
{{- $tls := .Values.postgresql.external.tls | default dict -}}
{{- $set := list -}}
{{- if ($tls.ca | default "" | trim) }}{{ $set = append $set "ca" }}{{ end -}}
{{- if ($tls.caSecret | default dict).name }}{{ $set = append $set "caSecret" }}{{ end -}}
{{- if ($tls.caConfigMap | default dict).name }}{{ $set = append $set "caConfigMap" }}{{ end -}}
{{- if gt (len $set) 1 -}}
{{- fail (printf "postgresql.external.tls: set at most one of ca, caSecret.name, caConfigMap.name (got %s)" (join ", " $set)) -}}
{{- end -}}
{{- with $set -}}{{ get (dict "ca" "inline" "caSecret" "secret" "caConfigMap" "configMap") (first .) }}{{ end -}}
{{- end -}}
{{- end -}}

{{/* commons.postgresql.externalCARef: the key of the user-named object holding the external server's CA (tls.caSecret or tls.caConfigMap), as YAML {name, key}. */}}
{{- define "commons.postgresql.externalCARef" -}}
{{- $tls := .Values.postgresql.external.tls | default dict -}}
{{- $ref := ternary ($tls.caSecret | default dict) ($tls.caConfigMap | default dict) (eq (include "commons.postgresql.externalCASource" .) "secret") -}}
{{- toYaml (dict "name" $ref.name "key" ($ref.key | default "ca.crt")) -}}
{{- end -}}

{{/* commons.postgresql.hasCA: "true" when the commons Jobs verify the server against a CA (cloudnativepg, external with a CA, bundled with tls.enabled). */}}
{{- define "commons.postgresql.hasCA" -}}
{{- if or (include "commons.postgresql.cnpg" .) (include "commons.postgresql.externalCASource" .) (include "commons.postgresql.bundledTLS" .) }}true{{ end -}}
{{- end -}}

{{/* commons.postgresql.caRefreshes: "true" when the CA comes from an object that can change after the install (the operator's Secret, a user-named Secret or ConfigMap, an existing TLS Secret): the secret-init refresh CronJob copies it into the tenant Secrets again. */}}
{{- define "commons.postgresql.caRefreshes" -}}
{{- if or (include "commons.postgresql.cnpg" .) (has (include "commons.postgresql.externalCASource" .) (list "secret" "configMap")) (and (include "commons.postgresql.bundledTLS" .) .Values.postgresql.tls.existingSecret) }}true{{ end -}}
{{- end -}}

{{/* commons.postgresql.bundledTLS: "true" when the bundled server runs with TLS (postgresql.tls.enabled). */}}
{{- define "commons.postgresql.bundledTLS" -}}
{{- if and (include "commons.postgresql.bundled" .) (.Values.postgresql.tls | default dict).enabled }}true{{ end -}}
{{- end -}}

{{/* commons.postgresql.hbaConfigMap: the ConfigMap with the bundled server's pg_hba.conf (TLS on). */}}
{{- define "commons.postgresql.hbaConfigMap" -}}
{{- include "commons.names.component" (dict "context" . "component" "postgresql-hba") -}}
{{- end -}}

{{/* commons.postgresql.hba: the bundled server's pg_hba.conf with TLS on: TCP only over TLS (hostssl), plain host lines only with postgresql.tls.allowPlaintext. */}}
{{- define "commons.postgresql.hba" -}}
# TYPE    DATABASE  USER  ADDRESS  METHOD
local     all       all            trust
hostssl   all       all   all      scram-sha-256
{{- if .Values.postgresql.tls.allowPlaintext }}
# postgresql.tls.allowPlaintext: unencrypted connections are still accepted (transition)
host      all       all   all      scram-sha-256
{{- end }}
{{- end -}}

{{/* commons.postgresql.tlsSecret: the bundled server's TLS Secret (tls.crt, tls.key, ca.crt): postgresql.tls.existingSecret (e.g. a cert-manager Certificate's), else the one secret-init issues. */}}
{{- define "commons.postgresql.tlsSecret" -}}
{{- (.Values.postgresql.tls | default dict).existingSecret | default (include "commons.names.component" (dict "context" . "component" "postgresql-tls")) -}}
{{- end -}}

{{/* commons.postgresql.tlsCertificate: the secret-init certificates entry of the bundled server (YAML): every name of the client Service. */}}
{{- define "commons.postgresql.tlsCertificate" -}}
{{- $svc := include "commons.names.component" (dict "context" . "component" "postgresql") -}}
{{- $ns := .Release.Namespace -}}
{{- toYaml (dict "name" (include "commons.postgresql.tlsSecret" .) "namespace" $ns
      "labels" (include "commons.secretInit.labels" (dict "context" . "component" "database") | fromYaml)
      "commonName" (include "commons.postgresql.host" .)
      "dnsNames" (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (include "commons.postgresql.host" .))
      "validityDays" (int (.Values.postgresql.tls.validityDays | default 3650))) -}}
{{- end -}}

{{/* commons.postgresql.caConfigMap: name of the rendered ConfigMap holding postgresql.external.tls.ca (external mode, inline CA). */}}
{{- define "commons.postgresql.caConfigMap" -}}
{{- include "commons.names.component" (dict "context" . "component" "postgresql-ca") -}}
{{- end -}}

{{/* commons.postgresql.tenantCAPath: PGSSLROOTCERT in the tenant Secrets: where charts/postgres-init's caVolumeMount puts the Secret's ca.crt. */}}
{{- define "commons.postgresql.tenantCAPath" -}}
/etc/kommons/postgres-ca/ca.crt
{{- end -}}

{{- define "commons.postgresql.database" -}}
{{- if or (include "commons.postgresql.bundled" .) (include "commons.postgresql.cnpg" .) }}postgres{{ else }}{{ .Values.postgresql.external.database }}{{ end -}}
{{- end -}}

{{/* commons.postgresql.adminSecret: name of the Secret holding the admin password. */}}
{{- define "commons.postgresql.adminSecret" -}}
{{- if or (include "commons.postgresql.bundled" .) (include "commons.postgresql.cnpg" .) -}}
{{- default (include "commons.names.component" (dict "context" . "component" "postgresql-admin")) .Values.postgresql.auth.existingSecret -}}
{{- else -}}
{{- required "postgresql.external.existingSecret (admin credentials) is required in external mode (postgresql.mode external, or postgresql.bundled false)" .Values.postgresql.external.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "commons.postgresql.adminPasswordKey" -}}
{{- if or (include "commons.postgresql.bundled" .) (include "commons.postgresql.cnpg" .) }}{{ .Values.postgresql.auth.passwordKey }}{{ else }}{{ .Values.postgresql.external.passwordKey }}{{ end -}}
{{- end -}}

{{/* commons.postgresql.adminEnv: libpq environment of the admin connection (password from the Secret, never in the manifest). */}}
{{- define "commons.postgresql.adminEnv" -}}
- name: PGHOST
  value: {{ include "commons.postgresql.host" . | quote }}
- name: PGPORT
  value: {{ include "commons.postgresql.port" . | quote }}
- name: PGDATABASE
  value: {{ include "commons.postgresql.database" . | quote }}
- name: PGSSLMODE
  value: {{ include "commons.postgresql.sslmode" . | quote }}
{{- if include "commons.postgresql.hasCA" . }}
- name: PGSSLROOTCERT
  value: {{ include "commons.postgresql.caPath" . | quote }}
{{- end }}
{{- if or (include "commons.postgresql.bundled" .) (include "commons.postgresql.cnpg" .) }}
- name: PGUSER
  value: {{ .Values.postgresql.auth.adminUser | quote }}
{{- else }}
- name: PGUSER
  valueFrom:
    secretKeyRef:
      name: {{ include "commons.postgresql.adminSecret" . }}
      key: {{ .Values.postgresql.external.usernameKey }}
{{- end }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "commons.postgresql.adminSecret" . }}
      key: {{ include "commons.postgresql.adminPasswordKey" . }}
{{- end -}}

{{/* ---------- cloudnativepg mode ---------- */}}

{{/* commons.postgresql.cnpg: "true" in cloudnativepg mode. */}}
{{- define "commons.postgresql.cnpg" -}}
{{- if eq (include "commons.postgresql.mode" .) "cloudnativepg" }}true{{ end -}}
{{- end -}}

{{/* commons.postgresql.clusterName: name of the CloudNativePG Cluster (its Services are <name>-rw, -ro, -r; its CA Secret <name>-ca). */}}
{{- define "commons.postgresql.clusterName" -}}
{{- include "commons.names.component" (dict "context" . "component" "postgresql") -}}
{{- end -}}

{{/* commons.postgresql.tenantSslmode: the sslmode handed to tenants: the Jobs' own. With a CA (cloudnativepg, bundled with TLS, external with a CA) verify-full, the CA in the tenant Secret (commons.postgresql.tenantCA). */}}
{{- define "commons.postgresql.tenantSslmode" -}}
{{- include "commons.postgresql.sslmode" . -}}
{{- end -}}

{{/*
commons.postgresql.tenantCA: the secret-init source (YAML) of the tenant Secrets' ca.crt: the
operator's <cluster>-ca Secret in cloudnativepg mode, the TLS Secret in bundled mode with TLS, the
user-named Secret or ConfigMap in external mode (each copied at run time, kept current on every
run), postgresql.external.tls.ca as a value; else nothing (no CA: sslmode disable or require).
JSON (toYaml would drop the PEM's final newline).
{{ include "commons.postgresql.tenantCA" $ | fromYaml }}
*/}}
{{- define "commons.postgresql.tenantCA" -}}
{{- if include "commons.postgresql.cnpg" . -}}
{{- toJson (dict "fromSecret" (dict "name" (printf "%s-ca" (include "commons.postgresql.clusterName" .)) "namespace" .Release.Namespace "key" "ca.crt")) -}}
{{- else if include "commons.postgresql.bundledTLS" . -}}
{{- toJson (dict "fromSecret" (dict "name" (include "commons.postgresql.tlsSecret" .) "namespace" .Release.Namespace "key" "ca.crt")) -}}
{{- else if eq (include "commons.postgresql.externalCASource" .) "inline" -}}
{{- toJson (dict "value" (printf "%s\n" (include "commons.postgresql.externalCA" .))) -}}
{{- else if include "commons.postgresql.externalCASource" . -}}
{{- $ref := include "commons.postgresql.externalCARef" . | fromYaml -}}
{{- $src := ternary "fromSecret" "fromConfigMap" (eq (include "commons.postgresql.externalCASource" .) "secret") -}}
{{- toJson (dict $src (dict "name" $ref.name "namespace" .Release.Namespace "key" $ref.key)) -}}
{{- end -}}
{{- end -}}

{{/* commons.postgresql.caPath: where the Jobs find the Cluster's CA certificate (PGSSLROOTCERT). */}}
{{- define "commons.postgresql.caPath" -}}
/etc/kommons/postgresql-ca/ca.crt
{{- end -}}

{{/* commons.postgresql.caVolumeMount: the CA's volumeMount (list entry) when the Jobs verify the server (commons.postgresql.hasCA), else nothing. */}}
{{- define "commons.postgresql.caVolumeMount" -}}
{{- if include "commons.postgresql.hasCA" . -}}
- name: postgresql-ca
  mountPath: {{ include "commons.postgresql.caPath" . | dir }}
  readOnly: true
{{- end -}}
{{- end -}}

{{/* commons.postgresql.caVolume: the CA's volume (list entry): ca.crt of the operator-generated <cluster>-ca Secret in cloudnativepg mode, of the TLS Secret in bundled mode with TLS, in external mode of the ConfigMap with postgresql.external.tls.ca or the key of the user-named tls.caSecret / tls.caConfigMap (mounted as ca.crt); else nothing. */}}
{{- define "commons.postgresql.caVolume" -}}
{{- if include "commons.postgresql.cnpg" . -}}
- name: postgresql-ca
  secret:
    secretName: {{ include "commons.postgresql.clusterName" . }}-ca
    defaultMode: 0440
    items:
      - key: ca.crt
        path: ca.crt
{{- else if include "commons.postgresql.bundledTLS" . -}}
- name: postgresql-ca
  secret:
    secretName: {{ include "commons.postgresql.tlsSecret" . }}
    defaultMode: 0440
    items:
      - key: ca.crt
        path: ca.crt
{{- else if eq (include "commons.postgresql.externalCASource" .) "inline" -}}
- name: postgresql-ca
  configMap:
    name: {{ include "commons.postgresql.caConfigMap" . }}
    defaultMode: 0444
    items:
      - key: ca.crt
        path: ca.crt
{{- else if eq (include "commons.postgresql.externalCASource" .) "secret" -}}
{{- $ref := include "commons.postgresql.externalCARef" . | fromYaml }}
- name: postgresql-ca
  secret:
    secretName: {{ $ref.name }}
    defaultMode: 0440
    items:
      - key: {{ $ref.key | quote }}
        path: ca.crt
{{- else if eq (include "commons.postgresql.externalCASource" .) "configMap" -}}
{{- $ref := include "commons.postgresql.externalCARef" . | fromYaml }}
- name: postgresql-ca
  configMap:
    name: {{ $ref.name }}
    defaultMode: 0444
    items:
      - key: {{ $ref.key | quote }}
        path: ca.crt
{{- end -}}
{{- end -}}

{{/* commons.provisioner.secret: name of the Secret (this namespace) holding each tenant's provisioner password, keyed by tenant namespace. */}}
{{- define "commons.provisioner.secret" -}}
{{- default (include "commons.names.component" (dict "context" . "component" "provisioner")) .Values.provisioner.existingSecret -}}
{{- end -}}

{{/*
commons.provisioner.role: the provisioner role of one tenant namespace: rolePrefix + the
namespace with "-" as "_" (namespaces have no "_", so the mapping is one to one); when that
exceeds PostgreSQL's 63 bytes, the namespace part is cut and 16 hex digits of its SHA-256 added.
Usage: include "commons.provisioner.role" (dict "context" $ "namespace" "imaging")
*/}}
{{- define "commons.provisioner.role" -}}
{{- $prefix := .context.Values.provisioner.rolePrefix -}}
{{- $ns := .namespace | replace "-" "_" -}}
{{- if le (len (printf "%s%s" $prefix $ns)) 63 -}}
{{- printf "%s%s" $prefix $ns -}}
{{- else -}}
{{- printf "%s%s_%s" $prefix (trunc (int (sub 46 (len $prefix))) $ns | trimSuffix "_") (sha256sum .namespace | trunc 16) -}}
{{- end -}}
{{- end -}}

{{/* commons.provisioner.tenants: the --tenants argument of the provisioner Job: namespace=role,... */}}
{{- define "commons.provisioner.tenants" -}}
{{- $pairs := list -}}
{{- range .Values.tenants -}}
{{- $pairs = append $pairs (printf "%s=%s" .namespace (include "commons.provisioner.role" (dict "context" $ "namespace" .namespace))) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* ---------- object storage ---------- */}}

{{/* commons.s3.enabled: "true" when there is an object store (bundled, or an external endpoint). */}}
{{- define "commons.s3.enabled" -}}
{{- if or .Values.objectStorage.bundled .Values.objectStorage.external.endpoint }}true{{ end -}}
{{- end -}}

{{/* commons.s3.endpoint: S3 endpoint URL. */}}
{{- define "commons.s3.endpoint" -}}
{{- if .Values.objectStorage.bundled -}}
{{- printf "http://%s.%s.svc.%s:%d" (include "commons.names.component" (dict "context" . "component" "minio")) .Release.Namespace .Values.clusterDomain (int .Values.objectStorage.minio.service.port) -}}
{{- else -}}
{{- .Values.objectStorage.external.endpoint -}}
{{- end -}}
{{- end -}}

{{- define "commons.s3.region" -}}
{{- if .Values.objectStorage.bundled }}{{ .Values.objectStorage.minio.region }}{{ else }}{{ .Values.objectStorage.external.region }}{{ end -}}
{{- end -}}

{{/* commons.s3.addressing: the bundled server is reached by path-style URLs. */}}
{{- define "commons.s3.addressing" -}}
{{- if .Values.objectStorage.bundled }}path{{ else }}{{ .Values.objectStorage.external.addressing }}{{ end -}}
{{- end -}}

{{/* commons.s3.adminSecret / accessKeyKey / secretKeyKey: where the admin (root) S3 credentials are. */}}
{{- define "commons.s3.adminSecret" -}}
{{- if .Values.objectStorage.bundled -}}
{{- default (include "commons.names.component" (dict "context" . "component" "minio-root")) .Values.objectStorage.minio.auth.existingSecret -}}
{{- else -}}
{{- required "objectStorage.external.existingSecret is required when objectStorage.bundled is false and an endpoint is set" .Values.objectStorage.external.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "commons.s3.accessKeyKey" -}}
{{- if .Values.objectStorage.bundled }}{{ .Values.objectStorage.minio.auth.rootUserKey }}{{ else }}{{ .Values.objectStorage.external.accessKeyKey }}{{ end -}}
{{- end -}}

{{- define "commons.s3.secretKeyKey" -}}
{{- if .Values.objectStorage.bundled }}{{ .Values.objectStorage.minio.auth.rootPasswordKey }}{{ else }}{{ .Values.objectStorage.external.secretKeyKey }}{{ end -}}
{{- end -}}

{{/*
commons.s3.physicalName: the physical S3 name s3-init gives a logical bucket or user name of a
scope (namespace, release): identical to internal/s3names.Physical (test/render
compares both on a table of inputs). Plain "<namespace>-<release>-<name>" when namespace and
release are [a-z0-9]+, the name is [a-z0-9]+(-[a-z0-9]+)*, the whole fits in 63 characters and
has no reserved AWS prefix or suffix; otherwise a readable base (lower-cased, runs of other
characters turned into "-", leading "-" removed, "k-" before a reserved prefix, cut to 53,
trailing "-" removed, "k" when empty) + "--" + 8 hex digits of
sha256("<len ns>:<ns>:<len rel>:<rel>:<len name>:<name>").
Usage: include "commons.s3.physicalName" (dict "namespace" "imaging" "release" .Release.Name "name" "dicom")
*/}}
{{- define "commons.s3.physicalName" -}}
{{- $ns := toString .namespace -}}
{{- $rel := toString .release -}}
{{- $name := toString .name -}}
{{- $full := printf "%s-%s-%s" $ns $rel $name -}}
{{- $prefixes := list "xn--" "sthree-" "amzn-s3-demo-" -}}
{{- $suffixes := list "-s3alias" "--ol-s3" "--x-s3" "--table-s3" ".mrap" -}}
{{- $reserved := false -}}
{{- range $prefixes }}{{ if hasPrefix . $full }}{{ $reserved = true }}{{ end }}{{ end -}}
{{- range $suffixes }}{{ if hasSuffix . $full }}{{ $reserved = true }}{{ end }}{{ end -}}
{{- if and (regexMatch "^[a-z0-9]+$" $ns) (regexMatch "^[a-z0-9]+$" $rel) (regexMatch "^[a-z0-9]+(-[a-z0-9]+)*$" $name) (le (len $full) 63) (not $reserved) -}}
{{- $full -}}
{{- else -}}
{{- $base := regexReplaceAll "^-+" (regexReplaceAll "[^a-z0-9]+" (lower $full) "-") "" -}}
{{- $kprefix := false -}}
{{- range $prefixes }}{{ if hasPrefix . $base }}{{ $kprefix = true }}{{ end }}{{ end -}}
{{- if $kprefix }}{{ $base = printf "k-%s" $base }}{{ end -}}
{{- $base = regexReplaceAll "-+$" (trunc 53 $base) "" -}}
{{- if eq $base "" }}{{ $base = "k" }}{{ end -}}
{{- printf "%s--%s" $base (trunc 8 (sha256sum (printf "%d:%s:%d:%s:%d:%s" (len $ns) $ns (len $rel) $rel (len $name) $name))) -}}
{{- end -}}
{{- end -}}

{{/* commons.s3.bucketName: physical name of a tenant's bucket (scope: tenant namespace, this release). Usage: include "commons.s3.bucketName" (dict "context" $ "namespace" "imaging" "name" "dicom") */}}
{{- define "commons.s3.bucketName" -}}
{{- include "commons.s3.physicalName" (dict "namespace" .namespace "release" .context.Release.Name "name" .name) -}}
{{- end -}}

{{/* commons.s3.tenantKeysSecret: Secret (this namespace) holding the per-tenant access keys of the bundled store. */}}
{{- define "commons.s3.tenantKeysSecret" -}}
{{- include "commons.names.component" (dict "context" . "component" "tenant-s3-keys") -}}
{{- end -}}

{{/* commons.s3.tenantsWithBuckets: "true" when at least one tenant lists buckets. */}}
{{- define "commons.s3.tenantsWithBuckets" -}}
{{- range .Values.tenants }}{{ if .buckets }}true{{ end }}{{ end -}}
{{- end -}}

{{/* commons.s3.provision: "true" when s3-init runs (bundled, or external with provisionBuckets) and a tenant lists buckets. */}}
{{- define "commons.s3.provision" -}}
{{- if and (include "commons.s3.tenantsWithBuckets" .) (or .Values.objectStorage.bundled (and .Values.objectStorage.provisionBuckets .Values.objectStorage.external.endpoint)) }}true{{ end -}}
{{- end -}}

{{/* commons.tenant.accessKeyId: the access key id s3-init gives a tenant's user "tenant". Usage: include "commons.tenant.accessKeyId" (dict "context" $ "namespace" "imaging") */}}
{{- define "commons.tenant.accessKeyId" -}}
{{- include "commons.s3.physicalName" (dict "namespace" .namespace "release" .context.Release.Name "name" "tenant") -}}
{{- end -}}

{{/* ---------- jobs ---------- */}}

{{/* commons.jobs.waitForPg: the wait-for-pg init container (level auth, admin credentials). */}}
{{- define "commons.jobs.waitForPg" -}}
- name: wait-for-pg
  image: {{ include "commons.tools.image" . }}
  imagePullPolicy: {{ .Values.tools.image.pullPolicy }}
  command: ["wait-for-pg"]
  args: ["--level", "auth", "--timeout", {{ .Values.jobs.waitTimeout | quote }}]
  env:
    {{- include "commons.postgresql.adminEnv" . | nindent 4 }}
  {{- with include "commons.postgresql.caVolumeMount" . }}
  volumeMounts:
    {{- . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.jobs.containerSecurityContext | nindent 4 }}
  resources:
    {{- toYaml .Values.jobs.resources | nindent 4 }}
{{- end -}}

{{/* commons.jobs.podSpecCommon: pod-level settings shared by the Jobs. */}}
{{- define "commons.jobs.podSpecCommon" -}}
restartPolicy: Never
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml .Values.jobs.podSecurityContext | nindent 2 }}
{{- include "kommons-common.images.pullSecrets" (dict "global" .Values.global) }}
{{- include "kommons-common.scheduling" (dict "values" .Values.jobs) }}
{{- end -}}
