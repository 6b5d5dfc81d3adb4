{{- /*
secret-init (cmd/secret-init, docs/secret-init.md) generates credentials inside the cluster so
that no chart renders a password. A chart describes what to write in a spec (a dict, holding no
value that is secret):
  secrets:      [{name, namespace, type, labels, annotations, data: {key: {generate|value|fromSecret|fromConfigMap|template}}}]
  certificates: [{name, namespace, labels, annotations, commonName, dnsNames, validityDays}]
and renders with the defines below: the spec's ConfigMap, the ServiceAccount with one Role per
namespace written or read (create Secrets; get and patch only the Secrets it names; get only the
ConfigMaps it reads), the
container and the pod's volumes. The ServiceAccount token reaches only the secret-init
container: the pod keeps automountServiceAccountToken false and the container mounts a
projected token at the standard path.
*/ -}}

{{/*
kommons-common.secretInit.configMap: the ConfigMap "name" (in the release namespace) holding the
spec as spec.yaml; "labels" (a YAML string) are its labels.
{{ include "kommons-common.secretInit.configMap" (dict "context" $ "name" $name "spec" $spec "labels" (include "x.labels" .)) }}
*/}}
{{- define "kommons-common.secretInit.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .name }}
  namespace: {{ .context.Release.Namespace | quote }}
  {{- with .labels }}
  labels:
    {{- . | nindent 4 }}
  {{- end }}
data:
  spec.yaml: |
    {{- toYaml .spec | nindent 4 }}
{{- end -}}

{{/*
kommons-common.secretInit.access: the Secrets the spec writes and reads and the ConfigMaps it
reads, by namespace, as YAML {namespace: {write: [names], read: [names], readConfigMaps: [names]}}
(fromSecret's and fromConfigMap's namespace defaults to its Secret's, a Secret's to the release
namespace). Used by kommons-common.secretInit.rbac.
{{ include "kommons-common.secretInit.access" (dict "context" $ "spec" $spec) | fromYaml }}
*/}}
{{- define "kommons-common.secretInit.access" -}}
{{- $home := .context.Release.Namespace -}}
{{- $access := dict -}}
{{- range $s := concat (.spec.secrets | default list) (.spec.certificates | default list) -}}
{{- $ns := $s.namespace | default $home -}}
{{- $a := get $access $ns | default (dict "write" list "read" list "readConfigMaps" list) -}}
{{- $_ := set $a "write" (append $a.write $s.name | uniq) -}}
{{- $_ := set $access $ns $a -}}
{{- range $key, $src := ($s.data | default dict) -}}
{{- with $src.fromSecret -}}
{{- $rns := .namespace | default $ns -}}
{{- $r := get $access $rns | default (dict "write" list "read" list "readConfigMaps" list) -}}
{{- $_ := set $r "read" (append $r.read .name | uniq) -}}
{{- $_ := set $access $rns $r -}}
{{- end -}}
{{- with $src.fromConfigMap -}}
{{- $rns := .namespace | default $ns -}}
{{- $r := get $access $rns | default (dict "write" list "read" list "readConfigMaps" list) -}}
{{- $_ := set $r "readConfigMaps" (append $r.readConfigMaps .name | uniq) -}}
{{- $_ := set $access $rns $r -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $access -}}
{{- end -}}

{{/*
kommons-common.secretInit.rbac: the ServiceAccount "name" in the release namespace (no token
automounted) and, in each namespace the spec writes or reads, a Role and RoleBinding "name":
create Secrets (Kubernetes cannot restrict create by name), get and patch the Secrets written,
get the Secrets only read (fromSecret), get the ConfigMaps read (fromConfigMap). Nothing else: no
list, no watch, no delete, no other ConfigMap.
{{ include "kommons-common.secretInit.rbac" (dict "context" $ "name" $name "spec" $spec "labels" (include "x.labels" .)) }}
*/}}
{{- define "kommons-common.secretInit.rbac" -}}
{{- $ := .context -}}
{{- $name := .name -}}
{{- $labels := .labels -}}
{{- $access := include "kommons-common.secretInit.access" (dict "context" $ "spec" .spec) | fromYaml -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  namespace: {{ $.Release.Namespace | quote }}
  {{- with $labels }}
  labels:
    {{- . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- range $ns := keys $access | sortAlpha }}
{{- $a := get $access $ns }}
{{- $readOnly := list }}
{{- range $a.read }}{{ if not (has . $a.write) }}{{ $readOnly = append $readOnly . }}{{ end }}{{ end }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $name }}
  namespace: {{ $ns | quote }}
  {{- with $labels }}
  labels:
    {{- . | nindent 4 }}
  {{- end }}
rules:
  {{- if $a.write }}
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["create"]
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: {{ toJson (sortAlpha $a.write) }}
    verbs: ["get", "patch"]
  {{- end }}
  {{- if $readOnly }}
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: {{ toJson (sortAlpha $readOnly) }}
    verbs: ["get"]
  {{- end }}
  {{- with $a.readConfigMaps }}
  - apiGroups: [""]
    resources: ["configmaps"]
    resourceNames: {{ toJson (sortAlpha .) }}
    verbs: ["get"]
  {{- end }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $name }}
  namespace: {{ $ns | quote }}
  {{- with $labels }}
  labels:
    {{- . | nindent 4 }}
  {{- end }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $name }}
    namespace: {{ $.Release.Namespace | quote }}
{{- end }}
{{- end -}}

{{/*
kommons-common.secretInit.container: the secret-init container (a list item): "image",
"pullPolicy", "securityContext" and "resources" (dicts) as the chart's other Jobs; "name"
(default secret-init); "deadline" (default 5m). It mounts the spec and the ServiceAccount token
of kommons-common.secretInit.volumes.
{{ include "kommons-common.secretInit.container" (dict "image" $img "pullPolicy" "IfNotPresent" "securityContext" $sc "resources" $res) | nindent 4 }}
*/}}
{{- define "kommons-common.secretInit.container" -}}
- name: {{ .name | default "secret-init" }}
  image: {{ .image }}
  imagePullPolicy: {{ .pullPolicy | default "IfNotPresent" }}
  command: ["secret-init"]
  env:
    - name: SECRET_INIT_SPEC
      value: /etc/kommons/secret-init/spec.yaml
    - name: SECRET_INIT_LOG_FORMAT
      value: json
    - name: SECRET_INIT_DEADLINE
      value: {{ .deadline | default "5m" | quote }}
  {{- with .securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: secret-init-spec
      mountPath: /etc/kommons/secret-init
      readOnly: true
    - name: secret-init-token
      mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      readOnly: true
{{- end -}}

{{/*
kommons-common.secretInit.volumes: the pod volumes of kommons-common.secretInit.container (list
items): the spec ConfigMap "configMap", and the ServiceAccount's projected token (one hour,
refreshed by the kubelet), the cluster CA and the namespace, mounted only by that container.
{{ include "kommons-common.secretInit.volumes" (dict "configMap" $name) | nindent 4 }}
*/}}
{{- define "kommons-common.secretInit.volumes" -}}
- name: secret-init-spec
  configMap:
    name: {{ .configMap }}
- name: secret-init-token
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3600
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
{{- end -}}
