{{/*
orthanc.secretInitSpec: the spec of the chart's secret-init Job (cmd/secret-init,
docs/secret-init.md): the administrator account Secret (unless auth.existingSecret)
and the S3 storage-encryption master key (s3 storage with encryption, unless
encryption.existingSecret), both generated once in the cluster and never overwritten.
Empty when there is nothing to generate. The spec holds no secret value.
{{ include "orthanc.secretInitSpec" $ }}
*/}}
{{- define "orthanc.secretInitSpec" -}}
{{- $secrets := list -}}
{{- $labels := include "kommons-common.labels.matchLabels" (dict "context" . "component" "credentials") | fromYaml -}}
{{- if not .Values.auth.existingSecret -}}
{{- $secrets = append $secrets (dict "name" (include "orthanc.authSecretName" .) "type" "kubernetes.io/basic-auth" "labels" $labels
  "data" (dict "username" (dict "value" .Values.auth.username) "password" (dict "generate" (dict "length" 32)))) -}}
{{- end -}}
{{- $enc := .Values.storage.s3.encryption -}}
{{- if and (eq .Values.storage.type "s3") $enc.enabled (not $enc.existingSecret) -}}
{{- /* Losing this key makes every encrypted object unreadable: back it up. */ -}}
{{- $secrets = append $secrets (dict "name" (include "orthanc.encryptionSecretName" .) "type" "Opaque" "labels" $labels
  "data" (dict $enc.key (dict "generate" (dict "bytes" 32)))) -}}
{{- end -}}
{{- if $secrets -}}
{{- toYaml (dict "secrets" $secrets) -}}
{{- end -}}
{{- end -}}
