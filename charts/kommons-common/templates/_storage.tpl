{{/*
kommons-common.storage.class: the storageClassName line of a PersistentVolumeClaim (spec or
volumeClaimTemplate): "storageClass", else global.storageClass; "-" renders "" (no dynamic
provisioning, bind to an existing volume); nothing when both are empty (the cluster's default class).
{{- with include "kommons-common.storage.class" (dict "storageClass" .Values.persistence.storageClass "global" .Values.global) }}
*/}}
{{- define "kommons-common.storage.class" -}}
{{- $class := .storageClass | default ((.global | default dict).storageClass) -}}
{{- if eq $class "-" -}}
storageClassName: ""
{{- else if $class -}}
storageClassName: {{ $class | quote }}
{{- end -}}
{{- end -}}
