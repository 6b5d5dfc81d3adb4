{{/*
orthanc.fullname: prefix of every object name (kommons-common.names.fullname, at most 50
characters so that the suffixes fit in 63).
{{ include "orthanc.fullname" $ }}
*/}}
{{- define "orthanc.fullname" -}}
{{- include "kommons-common.names.fullname" (dict "context" . "max" 50) -}}
{{- end -}}

{{/*
orthanc.labels: kommons-common's standard labels, the version being the Orthanc image's tag.
{{ include "orthanc.labels" (dict "root" $ "component" "web") }}
*/}}
{{- define "orthanc.labels" -}}
{{- include "kommons-common.labels.standard" (dict "context" .root "component" .component "version" .root.Values.image.tag) -}}
{{- end -}}

{{/*
orthanc.image: the Orthanc image reference (image.*, global.imageRegistry).
{{ include "orthanc.image" $ }}
*/}}
{{- define "orthanc.image" -}}
{{- include "kommons-common.images.image" (dict "image" .Values.image "global" .Values.global "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{/* orthanc.authSecretName */}}
{{- define "orthanc.authSecretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "orthanc.fullname" .)) -}}
{{- end -}}

{{/* orthanc.encryptionSecretName */}}
{{- define "orthanc.encryptionSecretName" -}}
{{- .Values.storage.s3.encryption.existingSecret | default (printf "%s-s3-encryption" (include "orthanc.fullname" .)) -}}
{{- end -}}

{{/* orthanc.serviceAccountName */}}
{{- define "orthanc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "orthanc.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* orthanc.usesVolume: "true" when the pods mount storage.filesystem (filesystem storage, or s3 hybrid mode). */}}
{{- define "orthanc.usesVolume" -}}
{{- if or (eq .Values.storage.type "filesystem") (and (eq .Values.storage.type "s3") (ne .Values.storage.s3.hybridMode "Disabled")) -}}true{{- end -}}
{{- end -}}

{{/*
orthanc.configVariants: the addressing variants of orthanc.json, comma-separated.
"path,virtual" when the addressing comes from the tenant Secret at runtime
(storage s3, storage.s3.virtualAddressing unset): the ConfigMap holds one file
per variant and the command names orthanc-$(ORTHANC_S3_ADDRESSING).json, which
Kubernetes expands from the Secret's key when it starts the container (Orthanc
cannot turn "path"/"virtual" into its boolean). "" otherwise: one orthanc.json.
*/}}
{{- define "orthanc.configVariants" -}}
{{- if and (eq .Values.storage.type "s3") (not (kindIs "bool" .Values.storage.s3.virtualAddressing)) -}}path,virtual{{- end -}}
{{- end -}}

{{/* orthanc.configFile: (dict "name" "web"|"jobs"|"orthanc" "variant" ""|"path"|"virtual"): NAME.json or NAME-VARIANT.json. */}}
{{- define "orthanc.configFile" -}}
{{- .name -}}{{- with .variant -}}-{{ . }}{{- end -}}.json
{{- end -}}

{{/*
orthanc.configuredPorts: a JSON list of the TCP ports (sorted, each once) Orthanc
connects to as configured in orthanc.config and jobsInstance.config: each
DicomModalities entry's port ([AET, host, port, ...] or {"Port"}, default 104),
and the port of each OrthancPeers and DicomWeb.Servers URL ([url, ...] or
{"Url"}; default 80 for http, 443 for https).
*/}}
{{- define "orthanc.configuredPorts" -}}
{{- $ports := list -}}
{{- range $cfg := list (.Values.orthanc.config | default dict) (.Values.jobsInstance.config | default dict) -}}
{{- range $m := (get $cfg "DicomModalities" | default dict) -}}
{{- if and (kindIs "slice" $m) (ge (len $m) 3) -}}
{{- $ports = append $ports (int (index $m 2)) -}}
{{- else if kindIs "map" $m -}}
{{- $ports = append $ports (int (get $m "Port" | default 104)) -}}
{{- end -}}
{{- end -}}
{{- $urls := list -}}
{{- range $p := concat (values (get $cfg "OrthancPeers" | default dict)) (values (get (get $cfg "DicomWeb" | default dict) "Servers" | default dict)) -}}
{{- if and (kindIs "slice" $p) $p -}}{{- $urls = append $urls (first $p) -}}{{- else if kindIs "map" $p -}}{{- $urls = append $urls (get $p "Url") -}}{{- end -}}
{{- end -}}
{{- range $url := $urls -}}
{{- $u := urlParse (toString $url) -}}
{{- $hostPort := splitList ":" $u.host -}}
{{- if gt (len $hostPort) 1 -}}
{{- $ports = append $ports (int (last $hostPort)) -}}
{{- else -}}
{{- $ports = append $ports (ternary 443 80 (eq $u.scheme "https")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $sorted := list -}}{{- /* zero-padded to sort numerically */ -}}
{{- range $p := $ports | uniq -}}{{- $sorted = append $sorted (printf "%05d" $p) -}}{{- end -}}
{{- $out := list -}}
{{- range sortAlpha $sorted -}}{{- $out = append $out (atoi .) -}}{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* orthanc.claimName */}}
{{- define "orthanc.claimName" -}}
{{- .Values.storage.filesystem.existingClaim | default (printf "%s-storage" (include "orthanc.fullname" .)) -}}
{{- end -}}

{{/* orthanc.maxWebReplicas: the most web pods that can run (HPA maximum, else replicaCount). */}}
{{- define "orthanc.maxWebReplicas" -}}
{{- if .Values.autoscaling.enabled -}}{{- int .Values.autoscaling.maxReplicas -}}{{- else -}}{{- int .Values.replicaCount -}}{{- end -}}
{{- end -}}

{{/* orthanc.maxPods: web pods plus the jobs instance. */}}
{{- define "orthanc.maxPods" -}}
{{- add (int (include "orthanc.maxWebReplicas" .)) (ternary 1 0 .Values.jobsInstance.enabled) -}}
{{- end -}}

{{/*
orthanc.merge: (dict "dst" DICT "src" DICT) merges src into dst in place:
objects key by key (recursively), anything else (lists, scalars, false, 0,
null) replaces. Unlike sprig's merge functions, false and 0 do override.
*/}}
{{- define "orthanc.merge" -}}
{{- $dst := .dst -}}
{{- range $k, $v := .src -}}
{{- $cur := index $dst $k -}}
{{- if and (kindIs "map" $v) (kindIs "map" $cur) -}}
{{- include "orthanc.merge" (dict "dst" $cur "src" $v) -}}
{{- else -}}
{{- $_ := set $dst $k (deepCopy $v) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* orthanc.pluginPath: (dict "root" $ "lib" NAME): an absolute path, or NAME in plugins.directory. */}}
{{- define "orthanc.pluginPath" -}}
{{- if hasPrefix "/" .lib -}}{{- .lib -}}{{- else -}}{{- printf "%s/%s" (.root.Values.orthanc.plugins.directory | trimSuffix "/") .lib -}}{{- end -}}
{{- end -}}

{{/*
orthanc.defaults: kommons' Orthanc configuration (a JSON object) for
"component" web or jobs and addressing "variant" (see orthanc.configVariants),
before the user's config. Secrets appear only as ${VAR} references that Orthanc
substitutes from the container environment.
*/}}
{{- define "orthanc.defaults" -}}
{{- $v := .root.Values -}}
{{- $jobs := eq .component "jobs" -}}
{{- $type := $v.storage.type -}}
{{- $plugins := list (include "orthanc.pluginPath" (dict "root" .root "lib" "libOrthancPostgreSQLIndex.so")) -}}
{{- if eq $type "postgresql" -}}
{{- $plugins = append $plugins (include "orthanc.pluginPath" (dict "root" .root "lib" "libOrthancPostgreSQLStorage.so")) -}}
{{- else if eq $type "s3" -}}
{{- $plugins = append $plugins (include "orthanc.pluginPath" (dict "root" .root "lib" "libOrthancAwsS3Storage.so")) -}}
{{- end -}}
{{- range $v.orthanc.plugins.extra -}}
{{- $plugins = append $plugins (include "orthanc.pluginPath" (dict "root" $.root "lib" .)) -}}
{{- end -}}
{{- $dicom := or $jobs (not $v.jobsInstance.enabled) -}}
{{- $c := dict
  "Name" ($v.orthanc.name | default (include "orthanc.fullname" .root))
  "HttpPort" (int $v.orthanc.httpPort)
  "DicomPort" (int $v.orthanc.dicomPort)
  "DicomAet" $v.orthanc.dicomAet
  "DicomCheckCalledAet" $v.orthanc.dicomCheckCalledAet
  "DicomServerEnabled" $dicom
  "RemoteAccessAllowed" true
  "AuthenticationEnabled" true
  "RegisteredUsers" (dict "${ORTHANC_ADMIN_USER}" "${ORTHANC_ADMIN_PASSWORD}")
  "SaveJobs" false
  "CheckRevisions" true
  "StorageCompression" false
  "KeepAlive" true
  "DatabaseServerIdentifier" "${POD_NAME}"
  "StorageDirectory" $v.storage.filesystem.mountPath
  "IndexDirectory" "/var/lib/orthanc/index"
  "TemporaryDirectory" "/tmp"
  "StorageAccessOnFind" "Never"
  "OverwriteInstances" false
  "HttpsCACertificates" "/etc/ssl/certs/ca-certificates.crt"
  "Plugins" $plugins
-}}
{{- $pg := dict
  "EnableIndex" true
  "EnableStorage" (eq $type "postgresql")
  "ConnectionUri" "postgresql://"
  "Lock" false
  "IndexConnectionsCount" (int $v.orthanc.postgresql.indexConnectionsCount)
  "MaximumConnectionRetries" (int $v.orthanc.postgresql.maximumConnectionRetries)
  "ConnectionRetryInterval" (int $v.orthanc.postgresql.connectionRetryInterval)
-}}
{{- $_ := set $c "PostgreSQL" $pg -}}
{{- if eq $type "s3" -}}
{{- $s3 := $v.storage.s3 -}}
{{- /* The plugin's connection timeout is ConnectTimeout (read by every version to
2.5.4); 2.5.1-2.5.4 also read the documented ConnectionTimeout but discard its
value. Both carry storage.s3.connectionTimeout, so a plugin that fixes that read
gets the same value. */ -}}
{{- $aws := dict
  "BucketName" "${ORTHANC_S3_BUCKET}"
  "Region" "${ORTHANC_S3_REGION}"
  "Endpoint" "${ORTHANC_S3_ENDPOINT}"
  "AccessKey" "${ORTHANC_S3_ACCESS_KEY_ID}"
  "SecretKey" "${ORTHANC_S3_SECRET_ACCESS_KEY}"
  "VirtualAddressing" (ternary $s3.virtualAddressing (eq .variant "virtual") (kindIs "bool" $s3.virtualAddressing))
  "RootPath" $s3.rootPath
  "StorageStructure" $s3.storageStructure
  "HybridMode" $s3.hybridMode
  "ConnectTimeout" (int $s3.connectionTimeout)
  "ConnectionTimeout" (int $s3.connectionTimeout)
  "RequestTimeout" (int $s3.requestTimeout)
-}}
{{- if $s3.encryption.enabled -}}
{{- $_ := set $aws "StorageEncryption" (dict "Enable" true "MasterKey" (list (int $s3.encryption.keyId) (printf "/etc/orthanc-secrets/encryption/%s" $s3.encryption.key)) "MaxConcurrentInputSize" (int $s3.encryption.maxConcurrentInputSize)) -}}
{{- end -}}
{{- $_ := set $c "AwsS3Storage" $aws -}}
{{- end -}}
{{- if $v.dicomTls.enabled -}}
{{- $_ := set $c "DicomTlsEnabled" true -}}
{{- $_ := set $c "DicomTlsCertificate" "/etc/orthanc-secrets/dicom-tls/tls.crt" -}}
{{- $_ := set $c "DicomTlsPrivateKey" "/etc/orthanc-secrets/dicom-tls/tls.key" -}}
{{- $_ := set $c "DicomTlsTrustedCertificates" "/etc/orthanc-secrets/dicom-tls/ca.crt" -}}
{{- $_ := set $c "DicomTlsRemoteCertificateRequired" $v.dicomTls.remoteCertificateRequired -}}
{{- end -}}
{{- toJson $c -}}
{{- end -}}

{{/* orthanc.configJSON: (dict "root" $ "component" "web"|"jobs" "variant" ""|"path"|"virtual"): the final orthanc.json. */}}
{{- define "orthanc.configJSON" -}}
{{- $c := include "orthanc.defaults" . | fromJson -}}
{{- include "orthanc.merge" (dict "dst" $c "src" (.root.Values.orthanc.config | default dict)) -}}
{{- if eq .component "jobs" -}}
{{- include "orthanc.merge" (dict "dst" $c "src" (.root.Values.jobsInstance.config | default dict)) -}}
{{- end -}}
{{- toPrettyJson $c -}}
{{- end -}}

{{/* orthanc.probeScript: the probe program, run as `python3 probe.py URL`. */}}
{{- define "orthanc.probeScript" -}}
# Orthanc probe: GET URL with the administrator's credentials, read from the
# environment at probe time so that they never appear in the pod spec or argv.
import base64, os, sys, urllib.request

url = sys.argv[1]
credentials = "%s:%s" % (os.environ["ORTHANC_ADMIN_USER"], os.environ["ORTHANC_ADMIN_PASSWORD"])
request = urllib.request.Request(url)
request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
try:
    with urllib.request.urlopen(request, timeout=float(os.environ.get("ORTHANC_PROBE_TIMEOUT", "5"))) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as error:  # the message names the URL and status, never the credentials
    print("probe %s failed: %s" % (url, error), file=sys.stderr)
    sys.exit(1)
{{- end -}}

{{/*
orthanc.validate: the checks JSON Schema cannot express, failing with the
value's path.
*/}}
{{- define "orthanc.validate" -}}
{{- $v := .Values -}}
{{- $pods := int (include "orthanc.maxPods" .) -}}
{{- if and (include "orthanc.usesVolume" .) (gt $pods 1) (not $v.storage.filesystem.existingClaim) (not (has "ReadWriteMany" $v.storage.filesystem.accessModes)) -}}
{{- fail (printf "orthanc: storage.filesystem.accessModes %v: %d pods (replicaCount or autoscaling.maxReplicas, plus the jobs instance) mount the storage volume, which needs ReadWriteMany" $v.storage.filesystem.accessModes $pods) -}}
{{- end -}}
{{- $cfg := $v.orthanc.config | default dict -}}
{{- range $key := list "RegisteredUsers" "AuthenticationEnabled" "SaveJobs" "DatabaseServerIdentifier" -}}
{{- if hasKey $cfg $key -}}
{{- fail (printf "orthanc: orthanc.config.%s is managed by the chart (see auth.* and the README): remove it" $key) -}}
{{- end -}}
{{- end -}}
{{- range $section, $keys := dict "PostgreSQL" (list "ConnectionUri" "Host" "Port" "Database" "Username" "Password" "Lock" "EnableIndex" "EnableStorage") "AwsS3Storage" (list "AccessKey" "SecretKey" "BucketName" "Endpoint" "StorageEncryption") -}}
{{- $s := index $cfg $section | default dict -}}
{{- range $keys -}}
{{- if and (kindIs "map" $s) (hasKey $s .) -}}
{{- fail (printf "orthanc: orthanc.config.%s.%s is managed by the chart (PostgreSQL from postgres-init, storage from storage.*): remove it" $section .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $name, $cfgs := dict "orthanc.config" $cfg "jobsInstance.config" ($v.jobsInstance.config | default dict) -}}
{{- range $key := list "RegisteredUsers" "SaveJobs" "PostgreSQL" "AwsS3Storage" -}}
{{- if and (eq $name "jobsInstance.config") (hasKey $cfgs $key) -}}
{{- fail (printf "orthanc: jobsInstance.config.%s is managed by the chart: remove it" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.storage.type "s3") (eq $v.storage.s3.hybridMode "WriteToObjectStorage") $v.storage.s3.encryption.enabled -}}
{{- fail "orthanc: storage.s3.hybridMode WriteToObjectStorage cannot be combined with storage.s3.encryption.enabled: with encryption on, the S3 plugin (2.5.4) also tries to decrypt the plaintext files already on the volume, and /move-storage copies them, still plaintext, into <uuid>.dcm.enc objects and deletes the volume copy, so every later read of them fails. Order (README: Migrating a volume to S3): first migrate with storage.s3.encryption.enabled false (move every file with /move-storage until the volume is empty), then set storage.s3.hybridMode Disabled, and only then enable encryption for new files" -}}
{{- end -}}
{{- if $v.storageTiering.enabled -}}
{{- if or (ne $v.storage.type "s3") (eq $v.storage.s3.hybridMode "Disabled") -}}
{{- fail (printf "orthanc: storageTiering.enabled needs storage.type s3 with storage.s3.hybridMode WriteToFileSystem or WriteToObjectStorage (got storage.type %s, hybridMode %s): /move-storage moves files between the volume and object storage, which only a hybrid mode has" $v.storage.type $v.storage.s3.hybridMode) -}}
{{- end -}}
{{- if and (not $v.jobsInstance.enabled) (gt (int (include "orthanc.maxWebReplicas" .)) 1) -}}
{{- fail "orthanc: storageTiering.enabled with more than one web replica needs jobsInstance.enabled: a /move-storage job lives in the Orthanc process that started it, and the Service spreads the tool's GET /jobs/{id} over the replicas" -}}
{{- end -}}
{{- end -}}
{{- if and $v.dicomTls.enabled (not $v.dicomTls.existingSecret) -}}
{{- fail "orthanc: dicomTls.existingSecret is required when dicomTls.enabled (a Secret with tls.crt, tls.key and ca.crt)" -}}
{{- end -}}
{{- $role := dict -}}
{{- range ($v.postgresInit.roles | default list) -}}
{{- if eq .name $v.orthanc.postgresql.role -}}{{- $role = . -}}{{- end -}}
{{- end -}}
{{- if not $role -}}
{{- fail (printf "orthanc: orthanc.postgresql.role %q is not in postgresInit.roles" $v.orthanc.postgresql.role) -}}
{{- end -}}
{{- $limit := -1 -}}
{{- if and (hasKey $role "connectionLimit") (not (kindIs "invalid" $role.connectionLimit)) -}}{{- $limit = int $role.connectionLimit -}}{{- end -}}
{{- if ge $limit 0 -}}
{{- $count := int $v.orthanc.postgresql.indexConnectionsCount -}}
{{- $need := add (mul (add $pods 1) $count) 1 -}}
{{- if gt $need $limit -}}
{{- fail (printf "orthanc: postgresInit.roles[%s].connectionLimit %d is below the connection budget %d = (%d pods + 1 surging during a rolling update) x orthanc.postgresql.indexConnectionsCount %d + 1 (wait-for-pg): raise the limit, or lower replicas or indexConnectionsCount" $role.name $limit $need $pods $count) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
orthanc.updateStrategy: (dict "root" $ "deployment" NAME). auto: Recreate
when the live Deployment runs another image (a plugin upgrade may migrate the
schema under an exclusive lock), RollingUpdate otherwise.
*/}}
{{- define "orthanc.updateStrategy" -}}
{{- $mode := .root.Values.updateStrategy -}}
{{- $type := $mode -}}
{{- if eq $mode "auto" -}}
{{- $type = "RollingUpdate" -}}
{{- $live := lookup "apps/v1" "Deployment" .root.Release.Namespace .deployment -}}
{{- if $live -}}
{{- range $live.spec.template.spec.containers -}}
{{- if and (eq .name "orthanc") (ne .image (include "orthanc.image" $.root)) -}}{{- $type = "Recreate" -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
type: {{ $type }}
{{- if eq $type "RollingUpdate" }}
rollingUpdate:
  maxSurge: 1
  maxUnavailable: 0
{{- end }}
{{- end -}}

{{/*
orthanc.podTemplate: (dict "root" $ "component" "web"|"jobs"): the pod
template of a Deployment.
*/}}
{{- define "orthanc.podTemplate" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $component := .component -}}
{{- $full := include "orthanc.fullname" $root -}}
{{- $pg := $v.orthanc.postgresql -}}
{{- $probe := list "python3" "/etc/orthanc/probe.py" (printf "http://127.0.0.1:%d%s" (int $v.orthanc.httpPort) $v.probes.path) -}}
{{- $readiness := list "python3" "/etc/orthanc/probe.py" (printf "http://127.0.0.1:%d%s" (int $v.orthanc.httpPort) $v.probes.readinessPath) -}}
{{- $podLabels := ternary $v.jobsInstance.podLabels $v.podLabels (eq $component "jobs") -}}
{{- $podAnnotations := ternary $v.jobsInstance.podAnnotations $v.podAnnotations (eq $component "jobs") -}}
{{- $resources := $v.resources -}}
{{- $variants := splitList "," (include "orthanc.configVariants" $root) -}}
{{- if and (eq $component "jobs") $v.jobsInstance.resources -}}{{- $resources = $v.jobsInstance.resources -}}{{- end -}}
metadata:
  labels:
    {{- include "orthanc.labels" (dict "root" $root "component" $component) | nindent 4 }}
    {{- with $podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- $configs := list }}
    {{- range $variants }}
    {{- $configs = append $configs (include "orthanc.configJSON" (dict "root" $root "component" $component "variant" .)) }}
    {{- end }}
    kommons.io/config-hash: {{ join "\n" $configs | sha256sum | trunc 16 | quote }}
    {{- with $podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "orthanc.serviceAccountName" $root }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ int $v.terminationGracePeriodSeconds }}
  {{- with include "kommons-common.images.pullSecrets" (dict "secrets" $v.imagePullSecrets "global" $v.global) }}
  {{- . | nindent 2 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- with include "kommons-common.scheduling" (dict "values" $v) | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- if eq $component "web" }}
  topologySpreadConstraints:
    {{- if $v.topologySpreadConstraints }}
    {{- toYaml $v.topologySpreadConstraints | nindent 4 }}
    {{- else }}
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "kommons-common.labels.matchLabels" (dict "context" $root "component" "web") | nindent 10 }}
    {{- end }}
  {{- end }}
  initContainers:
    {{- include "orthanc.poolerModeCheck" $root | nindent 4 }}
    {{- include "postgres-init.waitForPgInitContainer" (dict "root" $root "role" $pg.role "database" $pg.database "level" "database") | nindent 4 }}
    # A distinct /etc/hostid per pod: DCMTK builds new DICOM UIDs (modify, anonymize) from gethostid(),
    # the pid (1 in every container) and the time, so pods sharing the image's /etc/hostid could mint
    # the same UID in the same second. 4 random bytes, what glibc's gethostid() reads.
    - name: hostid
      image: {{ include "orthanc.image" $root | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command: ["python3", "-c", "import os; open('/run/hostid/hostid', 'wb').write(os.urandom(4))"]
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      resources:
        requests: {cpu: 10m, memory: 16Mi, ephemeral-storage: 1Mi}
        limits: {cpu: 100m, memory: 64Mi, ephemeral-storage: 1Mi}
      volumeMounts:
        - name: hostid
          mountPath: /run/hostid
  containers:
    - name: orthanc
      image: {{ include "orthanc.image" $root | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command:
        - {{ $v.orthanc.command | quote }}
        {{- if eq $v.orthanc.verbosity "verbose" }}
        - "--verbose"
        {{- else if eq $v.orthanc.verbosity "trace" }}
        - "--trace"
        {{- end }}
        - {{ printf "/etc/orthanc/%s" (include "orthanc.configFile" (dict "name" "orthanc" "variant" (ternary "$(ORTHANC_S3_ADDRESSING)" "" (gt (len $variants) 1)))) | quote }}
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: ORTHANC_ADMIN_USER
          {{- if $v.auth.existingSecret }}
          valueFrom:
            secretKeyRef: {name: {{ $v.auth.existingSecret | quote }}, key: {{ $v.auth.usernameKey | quote }}}
          {{- else }}
          valueFrom:
            secretKeyRef: {name: {{ include "orthanc.authSecretName" $root | quote }}, key: "username"}
          {{- end }}
        - name: ORTHANC_ADMIN_PASSWORD
          valueFrom:
            secretKeyRef: {name: {{ include "orthanc.authSecretName" $root | quote }}, key: {{ ternary $v.auth.passwordKey "password" (ne $v.auth.existingSecret "") | quote }}}
        {{- include "postgres-init.connectionEnv" (dict "root" $root "role" $pg.role "database" $pg.database) | nindent 8 }}
        {{- if eq $v.storage.type "s3" }}
        {{- $s3 := $v.storage.s3 }}
        {{- range $env, $key := dict "ORTHANC_S3_BUCKET" $s3.bucketKey "ORTHANC_S3_ENDPOINT" $s3.endpointKey "ORTHANC_S3_REGION" $s3.regionKey "ORTHANC_S3_ACCESS_KEY_ID" $s3.accessKeyIdKey "ORTHANC_S3_SECRET_ACCESS_KEY" $s3.secretAccessKeyKey }}
        - name: {{ $env }}
          valueFrom:
            secretKeyRef: {name: {{ $s3.secretName | quote }}, key: {{ $key | quote }}}
        {{- end }}
        {{- if gt (len $variants) 1 }}
        # path or virtual: selects the orthanc.json variant the command names.
        - name: ORTHANC_S3_ADDRESSING
          valueFrom:
            secretKeyRef: {name: {{ $s3.secretName | quote }}, key: {{ $s3.addressingKey | quote }}}
        {{- end }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        - name: http
          containerPort: {{ int $v.orthanc.httpPort }}
          protocol: TCP
        {{- if or (eq $component "jobs") (not $v.jobsInstance.enabled) }}
        - name: dicom
          containerPort: {{ int $v.orthanc.dicomPort }}
          protocol: TCP
        {{- end }}
      startupProbe:
        exec:
          command: {{ toJson $probe }}
        periodSeconds: 5
        timeoutSeconds: {{ int $v.probes.timeoutSeconds }}
        failureThreshold: {{ div (int $v.probes.startupTimeoutSeconds) 5 | max 1 }}
      livenessProbe:
        exec:
          command: {{ toJson $probe }}
        periodSeconds: {{ int $v.probes.periodSeconds }}
        timeoutSeconds: {{ int $v.probes.timeoutSeconds }}
        failureThreshold: {{ int $v.probes.livenessFailureThreshold }}
      readinessProbe:
        exec:
          command: {{ toJson $readiness }}
        periodSeconds: {{ int $v.probes.periodSeconds }}
        timeoutSeconds: {{ int $v.probes.timeoutSeconds }}
        failureThreshold: {{ int $v.probes.readinessFailureThreshold }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      resources:
        {{- toYaml $resources | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/orthanc
          readOnly: true
        - name: tmp
          mountPath: /tmp
        - name: state
          mountPath: /var/lib/orthanc
        - name: hostid
          mountPath: /etc/hostid
          subPath: hostid
          readOnly: true
        {{- /* the PostgreSQL server's CA, where PGSSLROOTCERT (libpq, read by the plugin) points */}}
        {{- include "postgres-init.caVolumeMount" (dict "root" $root) | nindent 8 }}
        {{- if include "orthanc.usesVolume" $root }}
        - name: storage
          mountPath: {{ $v.storage.filesystem.mountPath }}
        {{- end }}
        {{- if and (eq $v.storage.type "s3") $v.storage.s3.encryption.enabled }}
        - name: encryption
          mountPath: /etc/orthanc-secrets/encryption
          readOnly: true
        {{- end }}
        {{- if $v.dicomTls.enabled }}
        - name: dicom-tls
          mountPath: /etc/orthanc-secrets/dicom-tls
          readOnly: true
        {{- end }}
        {{- with $v.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ $full }}-config
        items:
          {{- range $variants }}
          - key: {{ include "orthanc.configFile" (dict "name" $component "variant" .) }}
            path: {{ include "orthanc.configFile" (dict "name" "orthanc" "variant" .) }}
          {{- end }}
          - key: probe.py
            path: probe.py
    - name: tmp
      emptyDir:
        sizeLimit: {{ $v.tmpSizeLimit }}
    - name: state
      emptyDir:
        sizeLimit: 64Mi
    - name: hostid
      emptyDir:
        medium: Memory
        sizeLimit: 1Mi
    {{- include "postgres-init.caVolume" (dict "root" $root) | nindent 4 }}
    {{- if include "orthanc.usesVolume" $root }}
    - name: storage
      persistentVolumeClaim:
        claimName: {{ include "orthanc.claimName" $root }}
    {{- end }}
    {{- if and (eq $v.storage.type "s3") $v.storage.s3.encryption.enabled }}
    - name: encryption
      secret:
        secretName: {{ include "orthanc.encryptionSecretName" $root }}
        defaultMode: 0440
        items:
          - key: {{ $v.storage.s3.encryption.key }}
            path: {{ $v.storage.s3.encryption.key }}
    {{- end }}
    {{- if $v.dicomTls.enabled }}
    - name: dicom-tls
      secret:
        secretName: {{ $v.dicomTls.existingSecret }}
        defaultMode: 0440
    {{- end }}
    {{- with $v.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/*
orthanc.poolerModeCheck: when postgresInit.connection.hostKey sends the index
through a connection pooler, an init container that stops the pod with a clear
message when the provisioner Secret's pool mode (orthanc.postgresql.poolerModeKey,
read at run time: the chart cannot know it) is anything but session. Orthanc's
PostgreSQL plugin cannot run through transaction pooling (measured on the real
node, docs/operations.md "Which pool mode each client can use"). Nothing is
rendered while Orthanc connects to provisioner.keys.host.
*/}}
{{- define "orthanc.poolerModeCheck" -}}
{{- $v := .Values -}}
{{- $pi := $v.postgresInit -}}
{{- $hostKey := $pi.connection.hostKey | default "" -}}
{{- $key := $v.orthanc.postgresql.poolerModeKey -}}
{{- if and $hostKey (ne $hostKey $pi.provisioner.keys.host) $key -}}
- name: pooler-mode
  image: {{ include "orthanc.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command:
    - sh
    - -c
    - |
      case "${PGPOOLER_MODE:-}" in
        ""|session) exit 0 ;;
      esac
      echo "orthanc: the index goes through a connection pooler (postgresInit.connection.hostKey ${POOLER_HOST_KEY}), and key ${POOLER_MODE_KEY} of Secret ${POOLER_SECRET} says its pool mode is \"${PGPOOLER_MODE}\": Orthanc's PostgreSQL plugin needs session pooling (through a transaction-mode pooler it fails with 'prepared statement ... does not exist' and exits; docs/operations.md, Connection pooling). Use a session-mode pooler, or unset postgresInit.connection.hostKey and portKey to connect to ${POOLER_DIRECT_KEY}." >&2
      exit 1
  env:
    - name: PGPOOLER_MODE
      valueFrom:
        secretKeyRef: {name: {{ $pi.provisioner.secretName | quote }}, key: {{ $key | quote }}, optional: true}
    - name: POOLER_HOST_KEY
      value: {{ $hostKey | quote }}
    - name: POOLER_MODE_KEY
      value: {{ $key | quote }}
    - name: POOLER_SECRET
      value: {{ $pi.provisioner.secretName | quote }}
    - name: POOLER_DIRECT_KEY
      value: {{ $pi.provisioner.keys.host | quote }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 16Mi, ephemeral-storage: 1Mi}
    limits: {cpu: 100m, memory: 32Mi, ephemeral-storage: 1Mi}
{{- end -}}
{{- end -}}
