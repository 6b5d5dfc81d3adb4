{{/*
kommons-common.labels.matchLabels: the selector labels (immutable in a Deployment or
StatefulSet): app.kubernetes.io/name (kommons-common.names.name, or "chartName"), instance
and, when "component" is not empty, component.
{{ include "kommons-common.labels.matchLabels" (dict "context" $ "component" "web") | nindent 6 }}
*/}}
{{- define "kommons-common.labels.matchLabels" -}}
app.kubernetes.io/name: {{ .chartName | default (include "kommons-common.names.name" .context) }}
app.kubernetes.io/instance: {{ .context.Release.Name | quote }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/*
kommons-common.labels.standard: the labels of every object: app.kubernetes.io/name, instance,
version ("version", default the chart's appVersion), managed-by, part-of kommons, helm.sh/chart
and, when "component" is not empty, component. "chartName" as in kommons-common.names.chart.
A chart appends its own labels after these.
{{ include "kommons-common.labels.standard" (dict "context" $ "component" "web" "version" .Values.image.tag) | nindent 4 }}
*/}}
{{- define "kommons-common.labels.standard" -}}
{{- $ctx := .context -}}
app.kubernetes.io/name: {{ .chartName | default (include "kommons-common.names.name" $ctx) }}
app.kubernetes.io/instance: {{ $ctx.Release.Name | quote }}
app.kubernetes.io/version: {{ .version | default $ctx.Chart.AppVersion | toString | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: kommons
helm.sh/chart: {{ include "kommons-common.names.chart" . }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}
