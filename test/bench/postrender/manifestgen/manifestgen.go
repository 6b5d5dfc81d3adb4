// Package manifestgen generates a deterministic stream of typical Helm chart
// output (about 2.2 KB per document) for post-renderer benchmarks.
package manifestgen

import (
	"fmt"
	"strings"
)

// Generate returns n documents. Every block of ten documents is one
// "release": ServiceAccount, ConfigMap, Secret, Service, Deployment,
// StatefulSet with a volumeClaimTemplate, PersistentVolumeClaim, Ingress, Job
// and CronJob; one release in three is a database (labelled postgresql).
func Generate(n int) []byte {
	var b strings.Builder
	b.Grow(n * 2300)
	for i := 0; i < n; i++ {
		r := i / 10
		name := fmt.Sprintf("rel%d", r)
		app := "web"
		if r%3 == 0 {
			app = "postgresql"
		}
		fmt.Fprintf(&b, "---\n# Source: %s/templates/%s.yaml\n", app, kinds[i%10])
		body := templates[i%10]
		body = strings.ReplaceAll(body, "NAME", name)
		body = strings.ReplaceAll(body, "APP", app)
		b.WriteString(body)
	}
	return []byte(b.String())
}

var kinds = []string{"serviceaccount", "configmap", "secret", "service", "deployment", "statefulset", "pvc", "ingress", "job", "cronjob"}

const labels = `    helm.sh/chart: APP-12.5.6
    app.kubernetes.io/name: APP
    app.kubernetes.io/instance: NAME
    app.kubernetes.io/version: "16.2.0"
    app.kubernetes.io/managed-by: Helm
`

var templates = []string{
	`apiVersion: v1
kind: ServiceAccount
metadata:
  name: NAME-APP
  labels:
` + labels + `automountServiceAccountToken: false
`,
	`apiVersion: v1
kind: ConfigMap
metadata:
  name: NAME-APP-config
  labels:
` + labels + `data:
  enabled: "on"
  app.conf: |
    # generated configuration
    listen_addresses = '*'
    port = 5432
    max_connections = 200
    shared_buffers = 128MB
    log_line_prefix = '%m [%p] %q%u@%d '
    ---
    include_dir = 'conf.d'
    ` + strings.Repeat("setting_padding = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'\n    ", 90) + `
  script.sh: |-
    #!/bin/sh
    set -eu
    exec "$@"
`,
	`apiVersion: v1
kind: Secret
metadata:
  name: NAME-APP
  labels:
` + labels + `type: Opaque
data:
  password: "` + strings.Repeat("cGFzc3dvcmQ", 20) + `"
  tls.crt: "` + strings.Repeat("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t", 40) + `"
  username: "YWRtaW4="
`,
	`apiVersion: v1
kind: Service
metadata:
  name: NAME-APP
  labels:
` + labels + `spec:
  type: ClusterIP
  sessionAffinity: None
  ports:
    - name: http
      port: 80
      targetPort: http
      protocol: TCP
  selector:
    app.kubernetes.io/name: APP
    app.kubernetes.io/instance: NAME
`,
	`apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME-APP
  labels:
` + labels + `spec:
  replicas: 2
  revisionHistoryLimit: 10
  selector:
    matchLabels:
      app.kubernetes.io/name: APP
      app.kubernetes.io/instance: NAME
  strategy:
    type: RollingUpdate
  template:
    metadata:
      annotations:
        checksum/config: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      labels:
        app.kubernetes.io/name: APP
        app.kubernetes.io/instance: NAME
    spec:
      serviceAccountName: NAME-APP
      securityContext:
        fsGroup: 1001
        runAsNonRoot: true
      containers:
        - name: APP
          image: "registry.example.com/APP:16.2.0"
          imagePullPolicy: IfNotPresent
          args: ["--port=8080", "--log-level=info"]
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: FEATURE_ENABLED
              value: "yes"
` + envVars(30) + `          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            initialDelaySeconds: 10
          readinessProbe:
            httpGet:
              path: /ready
              port: http
          resources:
            limits:
              cpu: 500m
              memory: 512Mi
            requests:
              cpu: 100m
              memory: 128Mi
          volumeMounts:
            - name: config
              mountPath: /etc/app
      volumes:
        - name: config
          configMap:
            name: NAME-APP-config
`,
	`apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: NAME-APP-db
  labels:
` + labels + `spec:
  serviceName: NAME-APP-db
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: APP
      app.kubernetes.io/instance: NAME
  template:
    metadata:
      labels:
        app.kubernetes.io/name: APP
        app.kubernetes.io/instance: NAME
    spec:
      securityContext:
        fsGroup: 1001
      containers:
        - name: db
          image: "registry.example.com/postgresql:16.2.0"
          env:
            - name: PGDATA
              value: /data/pgdata
` + envVars(20) + `          ports:
            - name: tcp
              containerPort: 5432
          resources:
            requests:
              cpu: 250m
              memory: 256Mi
          volumeMounts:
            - name: data
              mountPath: /data
  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes:
          - "ReadWriteOnce"
        resources:
          requests:
            storage: "8Gi"
`,
	`apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: NAME-APP-uploads
  labels:
` + labels + `spec:
  accessModes:
    - ReadWriteOnce
  resources:
    requests:
      storage: 10Gi
`,
	`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: NAME-APP
  labels:
` + labels + `  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: "0"
spec:
  ingressClassName: nginx
  rules:
    - host: "NAME.example.com"
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: NAME-APP
                port:
                  name: http
  tls:
    - hosts: ["NAME.example.com"]
      secretName: NAME-tls
`,
	`apiVersion: batch/v1
kind: Job
metadata:
  name: NAME-APP-migrate
  labels:
` + labels + `spec:
  backoffLimit: 3
  template:
    metadata:
      labels:
        app.kubernetes.io/name: APP
    spec:
      restartPolicy: OnFailure
      containers:
        - name: migrate
          image: "registry.example.com/APP:16.2.0"
          command: ["/bin/migrate", "--up"]
`,
	`apiVersion: batch/v1
kind: CronJob
metadata:
  name: NAME-APP-backup
  labels:
` + labels + `spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        metadata:
          labels:
            app.kubernetes.io/name: APP
        spec:
          restartPolicy: OnFailure
          containers:
            - name: backup
              image: "registry.example.com/backup:1.0"
              args:
                - --target=s3://backups/NAME
`,
}

// envVars renders n environment variables, as charts with many settings do.
func envVars(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "            - name: SETTING_%02d\n              value: \"value-%02d-of-a-typical-configuration-setting\"\n", i, i)
	}
	return b.String()
}
