{{/*
The connection Secrets, written in the cluster by the pg-init Job's
secret-init init container (cmd/secret-init, docs/secret-init.md): these
helpers build its spec. The spec holds no secret value; generated passwords
never appear in a render.
*/}}

{{/*
postgres-init.connectionSecretEntry: (dict "ctx" CTX "role" NAME "database"
LOGICAL "name" SECRETNAME): one spec entry (see postgres-init.connectionSecret).
*/}}
{{- define "postgres-init.connectionSecretEntry" -}}
{{- $ctx := .ctx -}}
{{- $r := dict -}}
{{- include "postgres-init.roleEntry" (dict "ctx" $ctx "role" .role "out" $r) -}}
{{- $role := $r.role -}}
{{- $own := include "postgres-init.roleSecretName" (dict "ctx" $ctx "role" $role) -}}
{{- if and $role.existingSecret (not .name) -}}
{{- fail (printf "postgres-init.connectionSecret: role %q uses existingSecret %q: pass \"name\" for the connection Secret" $role.name $role.existingSecret) -}}
{{- end -}}
{{- $name := .name | default $own -}}
{{- $password := dict -}}
{{- if and (eq $name $own) (not $role.existingSecret) -}}
{{- $password = dict "generate" (dict "length" 32) -}}
{{- else -}}
{{- $password = dict "fromSecret" (dict "name" $own "key" (include "postgres-init.rolePasswordKey" $role)) -}}
{{- end -}}
{{- $p := $ctx.Values.provisioner -}}
{{- $c := $ctx.Values.connection -}}
{{- $fact := dict -}}
{{- range $key, $src := dict "host" (list $c.host ($c.hostKey | default $p.keys.host) false) "port" (list (toString $c.port) ($c.portKey | default $p.keys.port) false) "sslmode" (list $c.sslmode $p.keys.sslmode true) "sslrootcert" (list ($c.sslrootcert | default "") $p.keys.sslrootcert true) -}}
{{- if index $src 0 -}}
{{- $_ := set $fact $key (dict "value" (index $src 0)) -}}
{{- else -}}
{{- $_ := set $fact $key (dict "fromSecret" (dict "name" $p.secretName "key" (index $src 1) "optional" (index $src 2))) -}}
{{- end -}}
{{- end -}}
{{- $user := include "postgres-init.physicalName" (dict "namespace" (include "postgres-init.scopeNamespace" $ctx) "release" (include "postgres-init.scopeRelease" $ctx) "name" $role.name) -}}
{{- $dbLogical := .database | default (include "postgres-init.roleDatabase" (dict "ctx" $ctx "role" $role)) -}}
{{- $db := "" -}}
{{- if $dbLogical -}}
{{- $db = include "postgres-init.databaseName" (dict "root" $ctx "database" $dbLogical) -}}
{{- end -}}
{{- $labels := include "postgres-init.selectorLabels" $ctx | fromYaml -}}
{{- $_ := set $labels "app.kubernetes.io/component" "credentials" -}}
{{- $_ := set $labels "kommons.io/postgres-role" $role.name -}}
{{- $data := dict
  "username" (dict "value" $user)
  "user" (dict "value" $user)
  "password" $password
  "host" $fact.host
  "port" $fact.port
  "sslmode" $fact.sslmode
  "sslrootcert" $fact.sslrootcert
  "dbname" (dict "value" $db)
  "uri" (dict "template" `postgresql://{{ .username }}:{{ urlquery .password }}@{{ .host }}:{{ .port }}/{{ .dbname }}{{ if or .sslmode .sslrootcert }}?{{ end }}{{ with .sslmode }}sslmode={{ . }}{{ end }}{{ if and .sslmode .sslrootcert }}&{{ end }}{{ with .sslrootcert }}sslrootcert={{ . }}{{ end }}`)
  "jdbc-uri" (dict "template" `jdbc:postgresql://{{ .host }}:{{ .port }}/{{ .dbname }}?password={{ urlquery .password }}&user={{ .username }}{{ with .sslmode }}&sslmode={{ . }}{{ end }}{{ with .sslrootcert }}&sslrootcert={{ . }}{{ end }}`)
  "pgpass" (dict "template" (printf "%s\n" `{{ .host }}:{{ .port }}:{{ .dbname }}:{{ .username }}:{{ pgpass .password }}`))
-}}
{{- toYaml (dict "name" $name "namespace" $ctx.Release.Namespace "type" "kubernetes.io/basic-auth" "labels" $labels "data" $data) -}}
{{- end -}}

{{/*
postgres-init.secretInitSpec (ctx): secret-init's spec: the Secret of each
role without existingSecret, then each connectionSecrets entry (its name
rendered with tpl, so "{{ .Release.Name }}-db" works).
*/}}
{{- define "postgres-init.secretInitSpec" -}}
{{- $ctx := . -}}
{{- $secrets := list -}}
{{- range .Values.roles -}}
{{- if not .existingSecret -}}
{{- $secrets = append $secrets (include "postgres-init.connectionSecretEntry" (dict "ctx" $ctx "role" .name) | fromYaml) -}}
{{- end -}}
{{- end -}}
{{- range $i, $e := .Values.connectionSecrets -}}
{{- $name := tpl (required (printf "postgres-init: connectionSecrets[%d].name is required" $i) $e.name) $ctx -}}
{{- $secrets = append $secrets (include "postgres-init.connectionSecretEntry" (dict "ctx" $ctx "role" (required (printf "postgres-init: connectionSecrets[%d].role is required" $i) $e.role) "database" $e.database "name" $name) | fromYaml) -}}
{{- end -}}
{{- if $secrets -}}
{{- toYaml (dict "secrets" $secrets) -}}
{{- end -}}
{{- end -}}

{{/* postgres-init.passwordEnv (role name): the pg-init env variable holding a role's password. */}}
{{- define "postgres-init.passwordEnv" -}}
{{- printf "PG_INIT_PASSWORD_%s" (upper .) -}}
{{- end -}}

{{/* postgres-init.secretInitName (ctx): name of secret-init's ConfigMap, ServiceAccount, Role and RoleBinding. */}}
{{- define "postgres-init.secretInitName" -}}
{{- printf "%s-secret-init" (include "postgres-init.prefix" .) -}}
{{- end -}}

{{/*
postgres-init.hookDocs: (dict "ctx" CTX "weight" N "yaml" MANIFESTS): the
manifests, with the hook annotations of weight N added to each in hook mode
(the library defines render plain objects; a hook Job must find them first).
*/}}
{{- define "postgres-init.hookDocs" -}}
{{- if .ctx.Values.hook -}}
{{- $hook := include "postgres-init.hookAnnotations" (dict "ctx" .ctx "weight" .weight) | fromYaml -}}
{{- range $i, $doc := splitList "\n---\n" .yaml -}}
{{- $o := fromYaml $doc -}}
{{- $_ := set $o.metadata "annotations" (merge ($o.metadata.annotations | default dict) $hook) -}}
{{- if $i }}
---
{{ end -}}
{{- toYaml $o -}}
{{- end -}}
{{- else -}}
{{- .yaml -}}
{{- end -}}
{{- end -}}
