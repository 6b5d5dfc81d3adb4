{{/*
kommons-common.secrets.value: the base64 value of "key" in Secret "name" of "namespace": the
live value (lookup) when the Secret holds a non-empty one, else a new random alphanumeric
value of "length" characters (default 32), generated once per render: every template asking
for the same Secret key gets the same value (a password copied into another Secret matches
its source). With "required" (the value's name, e.g. "provisioner.existingSecret") a missing
value fails the render instead: the Secret must exist before install.
{{ include "kommons-common.secrets.value" (dict "name" $name "namespace" .Release.Namespace "key" "password" "length" 32 "context" $) }}
*/}}
{{- define "kommons-common.secrets.value" -}}
{{- $values := .context.Values -}}
{{- if not (hasKey $values "__kommonsCommonMemo") -}}
{{- $_ := set $values "__kommonsCommonMemo" dict -}}
{{- end -}}
{{- $memo := get $values "__kommonsCommonMemo" -}}
{{- $id := printf "%s/%s/%s" .namespace .name .key -}}
{{- if not (hasKey $memo $id) -}}
{{- $live := (lookup "v1" "Secret" .namespace .name).data | default dict -}}
{{- $value := index $live .key | default "" -}}
{{- if and (not $value) .required -}}
{{- fail (printf "%s: Secret %q in namespace %q has no key %q, or it is empty (it must exist before install; `helm template` cannot read it)" .required .name .namespace .key) -}}
{{- else if not $value -}}
{{- $value = randAlphaNum (int (.length | default 32)) | b64enc -}}
{{- end -}}
{{- $_ := set $memo $id $value -}}
{{- end -}}
{{- get $memo $id -}}
{{- end -}}
