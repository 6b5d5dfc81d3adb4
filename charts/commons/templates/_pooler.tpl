{{/* ---------- cloudnativepg mode: the Pooler (PgBouncer) ---------- */}}

{{/* commons.postgresql.pooler: "true" in cloudnativepg mode with postgresql.cloudnativepg.pooler.enabled. */}}
{{- define "commons.postgresql.pooler" -}}
{{- if and (include "commons.postgresql.cnpg" .) .Values.postgresql.cloudnativepg.pooler.enabled }}true{{ end -}}
{{- end -}}

{{/* commons.postgresql.poolerName: name of the Pooler and of its Service (never the Cluster's name, which the operator refuses). */}}
{{- define "commons.postgresql.poolerName" -}}
{{- printf "%s-pooler-rw" (include "commons.postgresql.clusterName" .) -}}
{{- end -}}

{{/* commons.postgresql.poolerHost: the Pooler Service's FQDN, handed to tenants as PGHOST_POOLER. */}}
{{- define "commons.postgresql.poolerHost" -}}
{{- printf "%s.%s.svc.%s" (include "commons.postgresql.poolerName" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/*
commons.postgresql.poolerAltDNSNames: the pooler Service's names the Cluster's server certificate
must also carry (spec.certificates.serverAltDNSNames): PgBouncer presents that certificate to its
clients, so verify-full through the pooler checks one of these names.
*/}}
{{- define "commons.postgresql.poolerAltDNSNames" -}}
{{- $n := include "commons.postgresql.poolerName" . -}}
{{- $ns := .Release.Namespace -}}
- {{ $n }}
- {{ printf "%s.%s" $n $ns }}
- {{ printf "%s.%s.svc" $n $ns }}
- {{ printf "%s.%s.svc.%s" $n $ns .Values.clusterDomain }}
{{- end -}}

{{/* commons.postgresql.poolerAuthRole: the role CloudNativePG's PgBouncer runs its auth_query as; a tenant's databases must grant it CONNECT. */}}
{{- define "commons.postgresql.poolerAuthRole" -}}
cnpg_pooler_pgbouncer
{{- end -}}
