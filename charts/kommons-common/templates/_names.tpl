{{/*
kommons-common.names.name: the chart name, nameOverride first, at most 63 characters.
{{ include "kommons-common.names.name" $ }}
*/}}
{{- define "kommons-common.names.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
kommons-common.names.fullname: the prefix of a release's object names: fullnameOverride, else
"<release>-<name>" (the release name alone when it contains the name), cut to "max"
characters (default 63; a chart that appends suffixes passes less) without a trailing "-".
{{ include "kommons-common.names.fullname" (dict "context" $ "max" 40) }}
*/}}
{{- define "kommons-common.names.fullname" -}}
{{- $ctx := .context -}}
{{- $max := int (.max | default 63) -}}
{{- $name := include "kommons-common.names.name" $ctx -}}
{{- $full := printf "%s-%s" $ctx.Release.Name $name -}}
{{- if $ctx.Values.fullnameOverride -}}
{{- $full = $ctx.Values.fullnameOverride -}}
{{- else if contains $name $ctx.Release.Name -}}
{{- $full = $ctx.Release.Name -}}
{{- end -}}
{{- $full | trunc $max | trimSuffix "-" -}}
{{- end -}}

{{/*
kommons-common.names.chart: the helm.sh/chart label value, "<chart>-<version>" ("+" as "_",
at most 63 characters). "chartName" names the chart when .Chart.Name is not its own (a
dependency with an alias runs under the alias as .Chart.Name).
{{ include "kommons-common.names.chart" (dict "context" $ "chartName" "postgres-init") }}
*/}}
{{- define "kommons-common.names.chart" -}}
{{- printf "%s-%s" (.chartName | default .context.Chart.Name) .context.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}
