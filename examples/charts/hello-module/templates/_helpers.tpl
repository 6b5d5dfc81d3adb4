{{/*
hello-module.fullname: the prefix of this module's object names. Labels, the image reference
and the other shared parts come from the kommons-common library chart (a dependency, like
postgres-init).
{{ include "hello-module.fullname" $ }}
*/}}
{{- define "hello-module.fullname" -}}
{{- printf "%s-hello" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
