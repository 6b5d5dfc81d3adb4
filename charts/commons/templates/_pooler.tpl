{{/* ---------- cloudnativepg mode: the Pooler (PgBouncer) ---------- */}}

{{/* commons.postgresql.pooler: "true" in cloudnativepg mode with postgresql.cloudnativepg.pooler.enabled. */}}
{{- define "commons.postgresql.pooler" -}}
{{- if and (include "commons.postgresql.cnpg" .) .Values.postgresql.cloudnativepg.pooler.enabled }}true{{ end -}}
{{- end -}}

{{/* commons.postgresql.poolerTypes: the Pooler types rendered, comma-separated: rw, and ro with pooler.ro.enabled. */}}
{{- define "commons.postgresql.poolerTypes" -}}
{{- if include "commons.postgresql.pooler" . -}}
rw{{ if .Values.postgresql.cloudnativepg.pooler.ro.enabled }},ro{{ end }}
{{- end -}}
{{- end -}}

{{/* commons.postgresql.poolerName: name of the rw Pooler and of its Service (never the Cluster's name, which the operator refuses). */}}
{{- define "commons.postgresql.poolerName" -}}
{{- include "commons.postgresql.poolerNameOf" (dict "context" . "type" "rw") -}}
{{- end -}}

{{/* commons.postgresql.poolerNameOf: (dict "context" $ "type" "rw"|"ro"): name of that Pooler and of its Service. */}}
{{- define "commons.postgresql.poolerNameOf" -}}
{{- printf "%s-pooler-%s" (include "commons.postgresql.clusterName" .context) .type -}}
{{- end -}}

{{/* commons.postgresql.poolerHost: the rw Pooler Service's FQDN, handed to tenants as PGHOST_POOLER. */}}
{{- define "commons.postgresql.poolerHost" -}}
{{- include "commons.postgresql.poolerHostOf" (dict "context" . "type" "rw") -}}
{{- end -}}

{{/* commons.postgresql.poolerHostOf: (dict "context" $ "type" "rw"|"ro"): that Pooler Service's FQDN (ro: PGHOST_POOLER_RO). */}}
{{- define "commons.postgresql.poolerHostOf" -}}
{{- printf "%s.%s.svc.%s" (include "commons.postgresql.poolerNameOf" .) .context.Release.Namespace .context.Values.clusterDomain -}}
{{- end -}}

{{/*
commons.postgresql.poolerAltDNSNames: the pooler Service's names the Cluster's server certificate
must also carry (spec.certificates.serverAltDNSNames): PgBouncer presents that certificate to its
clients, so verify-full through the pooler checks one of these names.
*/}}
{{- define "commons.postgresql.poolerAltDNSNames" -}}
{{- $ns := .Release.Namespace -}}
{{- range $i, $type := splitList "," (include "commons.postgresql.poolerTypes" .) -}}
{{- $n := include "commons.postgresql.poolerNameOf" (dict "context" $ "type" $type) -}}
{{- if $i }}{{ "\n" }}{{ end -}}
- {{ $n }}
- {{ printf "%s.%s" $n $ns }}
- {{ printf "%s.%s.svc" $n $ns }}
- {{ printf "%s.%s.svc.%s" $n $ns $.Values.clusterDomain }}
{{- end -}}
{{- end -}}

{{/* commons.postgresql.poolerAuthRole: the role CloudNativePG's PgBouncer runs its auth_query as; a tenant's databases must grant it CONNECT. */}}
{{- define "commons.postgresql.poolerAuthRole" -}}
cnpg_pooler_pgbouncer
{{- end -}}
