{{/*
kommons-common.scheduling: where a pod may run, from a component's values: priorityClassName,
nodeSelector, tolerations and affinity, each only when set (every line after a leading newline).
{{- include "kommons-common.scheduling" (dict "values" .Values.job) | nindent 2 }}
*/}}
{{- define "kommons-common.scheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
