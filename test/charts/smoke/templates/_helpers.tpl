{{- define "smoke.labels" -}}
app.kubernetes.io/name: smoke
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- define "smoke.selector" -}}
app.kubernetes.io/name: smoke
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{/* smoke.pod renders a pod spec; call with (dict "root" . "data" BOOL): data mounts the "data" volume. */}}
{{- define "smoke.pod" -}}
{{- $root := .root -}}
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
containers:
  - name: main
    image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag }}"
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: ["ALL"]
    resources:
      requests: {cpu: 10m, memory: 16Mi, ephemeral-storage: 16Mi}
      limits: {cpu: 100m, memory: 32Mi, ephemeral-storage: 16Mi}
    {{- if .data }}
    volumeMounts:
      - name: data
        mountPath: /data
    {{- end }}
{{- end -}}
