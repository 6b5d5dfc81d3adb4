{{/*
postgres-init.physicalName: the PostgreSQL physical name of a database or role,
identical to pg-init's Go function internal/pgnames.Physical (a test renders
this template with the Helm SDK and compares the two on hostile inputs).

Usage:
  {{ include "postgres-init.physicalName" (dict "namespace" .Release.Namespace "release" .Release.Name "name" "orthanc") }}

full = namespace_release_name is used as is when namespace and release match
^[a-z0-9]+$, name matches ^[a-z0-9]+(_[a-z0-9]+)*$, full does not start with
"pg_" and is at most 63 bytes. Otherwise: lower-case, runs of characters
outside [a-z0-9_] become "_", "_" prefixed before "pg_", cut to 45 bytes,
trailing "_" removed, then "__" and the first 16 hex digits (64 bits) of
sha256("<len ns>:<ns>:<len rel>:<rel>:<len name>:<name>"). (kommons before
this change used 8 hex digits and 53 bytes; pg-init renames such objects.)
*/}}
{{- define "postgres-init.physicalName" -}}
{{- $ns := toString (required "postgres-init.physicalName: namespace is required" .namespace) -}}
{{- $rel := toString (required "postgres-init.physicalName: release is required" .release) -}}
{{- $name := toString (required "postgres-init.physicalName: name is required" .name) -}}
{{- $full := printf "%s_%s_%s" $ns $rel $name -}}
{{- $plain := and (regexMatch "^[a-z0-9]+$" $ns) (regexMatch "^[a-z0-9]+$" $rel) (regexMatch "^[a-z0-9]+(_[a-z0-9]+)*$" $name) (not (hasPrefix "pg_" $full)) (le (len $full) 63) -}}
{{- if $plain -}}
{{- $full -}}
{{- else -}}
{{- $base := regexReplaceAll "[^a-z0-9_]+" (lower $full) "_" -}}
{{- if hasPrefix "pg_" $base -}}{{- $base = printf "_%s" $base -}}{{- end -}}
{{- $base = regexReplaceAll "_+$" (trunc 45 $base) "" -}}
{{- $hash := trunc 16 (sha256sum (printf "%d:%s:%d:%s:%d:%s" (len $ns) $ns (len $rel) $rel (len $name) $name)) -}}
{{- printf "%s__%s" $base $hash -}}
{{- end -}}
{{- end -}}
