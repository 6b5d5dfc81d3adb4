{{/*
kommons-common.images.image: an image reference, [registry/]repository[:tag][@digest], from an
image value {registry, repository, tag, digest}: global.imageRegistry replaces the registry, an
empty tag falls back to "defaultTag" (no tag when both are empty).
{{ include "kommons-common.images.image" (dict "image" .Values.image "global" .Values.global "defaultTag" .Chart.AppVersion) }}
*/}}
{{- define "kommons-common.images.image" -}}
{{- $registry := (.global | default dict).imageRegistry | default .image.registry -}}
{{- $tag := .image.tag | default .defaultTag | toString -}}
{{- $ref := .image.repository -}}
{{- if $registry -}}{{- $ref = printf "%s/%s" $registry $ref -}}{{- end -}}
{{- if $tag -}}{{- $ref = printf "%s:%s" $ref $tag -}}{{- end -}}
{{- if .image.digest -}}{{- $ref = printf "%s@%s" $ref .image.digest -}}{{- end -}}
{{- $ref -}}
{{- end -}}

{{/*
kommons-common.images.kommonsTools: the kommons-tools image reference (pg-init, wait-for-pg,
s3-init): the chart's image value with each non-empty field of global.kommonsTools.image (one
place for every kommons chart of a release) replacing its own, then as kommons-common.images.image.
{{ include "kommons-common.images.kommonsTools" (dict "image" .Values.image "global" .Values.global "defaultTag" .Chart.AppVersion) }}
*/}}
{{- define "kommons-common.images.kommonsTools" -}}
{{- $image := deepCopy .image -}}
{{- range $k, $v := (dig "kommonsTools" "image" dict (.global | default dict)) -}}
{{- if $v -}}{{- $_ := set $image $k $v -}}{{- end -}}
{{- end -}}
{{- include "kommons-common.images.image" (dict "image" $image "global" .global "defaultTag" .defaultTag) -}}
{{- end -}}

{{/*
kommons-common.images.pullSecrets: the imagePullSecrets field of a pod spec (with a leading
newline): the pod's own "secrets" (names, or {name: ...}) then global.imagePullSecrets, each
name once; nothing when both are empty.
{{- include "kommons-common.images.pullSecrets" (dict "secrets" .Values.imagePullSecrets "global" .Values.global) | nindent 2 }}
*/}}
{{- define "kommons-common.images.pullSecrets" -}}
{{- $names := list -}}
{{- range concat (.secrets | default list) ((.global | default dict).imagePullSecrets | default list) -}}
{{- if kindIs "string" . -}}{{- $names = append $names . -}}{{- else -}}{{- $names = append $names .name -}}{{- end -}}
{{- end -}}
{{- with uniq $names }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . | quote }}
  {{- end }}
{{- end -}}
{{- end -}}
