{{/* Names, labels and the checks every template relies on. */}}

{{- define "podflow.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "podflow.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: podflow
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "podflow.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "podflow.image" -}}
{{ .root.Values.image.registry }}/{{ .name }}:{{ .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- end -}}

{{- define "podflow.secretName" -}}{{ include "podflow.fullname" . }}-secrets{{- end -}}
{{- define "podflow.redisSecretName" -}}{{ .Values.redis.existingSecret | default (include "podflow.secretName" .) }}{{- end -}}
{{- define "podflow.authSecretName" -}}{{ .Values.auth.existingSecret | default (include "podflow.secretName" .) }}{{- end -}}
{{- define "podflow.redisHost" -}}{{ include "podflow.fullname" . }}-redis{{- end -}}

{{/* Impossible combinations fail the install with what to change. */}}
{{- define "podflow.validate" -}}
{{- $v := .Values -}}
{{- $external := $v.redis.external -}}
{{- $sources := 0 -}}
{{- if $external.url }}{{ $sources = add1 $sources }}{{ end -}}
{{- if $external.sentinels }}{{ $sources = add1 $sources }}{{ end -}}
{{- if $external.clusterNodes }}{{ $sources = add1 $sources }}{{ end -}}
{{- if and $v.redis.embedded.enabled (gt $sources 0) -}}
{{- fail "redis: set either redis.embedded.enabled=true (trying it out) or one of redis.external.url, .sentinels, .clusterNodes (production), not both" -}}
{{- end -}}
{{- if and (not $v.redis.embedded.enabled) (ne $sources 1) -}}
{{- fail "redis: with redis.embedded.enabled=false set exactly one of redis.external.url, redis.external.sentinels (with sentinelName) or redis.external.clusterNodes" -}}
{{- end -}}
{{- if and $external.sentinels (not $external.sentinelName) -}}
{{- fail "redis.external.sentinels needs redis.external.sentinelName: the master group the sentinels watch" -}}
{{- end -}}
{{- if eq $v.files.mode "s3" -}}
{{- if or (not $v.files.s3.bucket) (not $v.files.s3.endpoint) -}}
{{- fail "files.mode=s3 needs files.s3.bucket and files.s3.endpoint (for AWS S3: https://s3.<region>.amazonaws.com)" -}}
{{- end -}}
{{- end -}}
{{- if and $v.worker.autoscaling.keda.enabled $v.worker.autoscaling.hpa.enabled -}}
{{- fail "worker.autoscaling: enable keda or hpa, not both (both would scale the same Deployment)" -}}
{{- end -}}
{{- if $v.worker.autoscaling.keda.enabled -}}
{{- if not (.Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject") -}}
{{- fail "worker.autoscaling.keda.enabled=true but this cluster has no KEDA (keda.sh/v1alpha1 ScaledObject): install KEDA first, or use worker.autoscaling.hpa" -}}
{{- end -}}
{{- if not $v.worker.autoscaling.keda.prometheusServerAddress -}}
{{- fail "worker.autoscaling.keda.prometheusServerAddress is required: the Prometheus that scrapes podflow's /metrics (podflow_backlog_executions)" -}}
{{- end -}}
{{- end -}}
{{- if and $v.metrics.serviceMonitor.enabled (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) -}}
{{- fail "metrics.serviceMonitor.enabled=true but this cluster has no Prometheus Operator (monitoring.coreos.com/v1 ServiceMonitor)" -}}
{{- end -}}
{{- if and (eq $v.files.mode "volume") (gt (int $v.coordinator.replicas) 1) (eq $v.files.volume.accessMode "ReadWriteOnce") -}}
{{- fail "files.mode=volume with files.volume.accessMode=ReadWriteOnce allows one coordinator only: set coordinator.replicas=1, a ReadWriteMany class, or files.mode=s3" -}}
{{- end -}}
{{- if eq .Release.Namespace $v.sandbox.namespace -}}
{{- fail (printf "sandbox.namespace (%s) must differ from the release namespace: sandbox pods run tenant code and get their own restricted namespace" $v.sandbox.namespace) -}}
{{- end -}}
{{- end -}}

{{/* Environment both services share: Redis, queue prefix, files. */}}
{{- define "podflow.sharedEnv" -}}
- name: QUEUE_PREFIX
  value: {{ .Values.redis.queuePrefix | quote }}
{{- if .Values.redis.embedded.enabled }}
- name: REDIS_URL
  value: {{ printf "redis://%s:6379" (include "podflow.redisHost" .) | quote }}
# The embedded Redis has a password of its own (the chart's Secret): a NetworkPolicy is not the
# only thing between a sandbox and every tenant's queues, on a CNI that does not enforce it.
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef: { name: {{ include "podflow.redisSecretName" . | quote }}, key: redis-password }
{{- else }}
{{- with .Values.redis.external }}
{{- if .url }}
- name: REDIS_URL
  value: {{ .url | quote }}
{{- end }}
{{- if .sentinels }}
- name: REDIS_SENTINELS
  value: {{ .sentinels | quote }}
- name: REDIS_SENTINEL_NAME
  value: {{ .sentinelName | quote }}
{{- end }}
{{- if .clusterNodes }}
- name: REDIS_CLUSTER_NODES
  value: {{ .clusterNodes | quote }}
{{- end }}
{{- if .tls }}
- name: REDIS_TLS
  value: "true"
{{- end }}
{{- end }}
{{- if .Values.redis.existingSecret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef: { name: {{ .Values.redis.existingSecret | quote }}, key: redis-password }
{{- end }}
{{- end }}
- name: FILE_URL_TTL_SECONDS
  value: {{ .Values.files.urlTtlSeconds | quote }}
{{- if eq .Values.files.mode "s3" }}
- name: STORAGE
  value: s3
{{- with .Values.files.s3 }}
- name: S3_BUCKET
  value: {{ .bucket | quote }}
- name: S3_ENDPOINT
  value: {{ .endpoint | quote }}
{{- if .publicEndpoint }}
- name: S3_PUBLIC_ENDPOINT
  value: {{ .publicEndpoint | quote }}
{{- end }}
- name: S3_REGION
  value: {{ .region | quote }}
- name: S3_FORCE_PATH_STYLE
  value: {{ .forcePathStyle | quote }}
{{- if .keyPrefix }}
- name: S3_KEY_PREFIX
  value: {{ .keyPrefix | quote }}
{{- end }}
{{- if .existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: { name: {{ .existingSecret | quote }}, key: access-key-id }
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: { name: {{ .existingSecret | quote }}, key: secret-access-key }
{{- end }}
{{- end }}
{{- else }}
- name: STORAGE
  value: local
- name: STORAGE_DIR
  value: /var/lib/podflow/files
- name: FILE_URL_SECRET
  valueFrom:
    secretKeyRef: { name: {{ include "podflow.secretName" . | quote }}, key: file-url-secret }
- name: PUBLIC_URL
  value: {{ .Values.files.publicUrl | default (printf "http://%s-coordinator.%s.svc:%d" (include "podflow.fullname" .) .Release.Namespace (int .Values.coordinator.service.port)) | quote }}
{{- end }}
{{- end -}}

{{/* A map of extra environment, by name, as env entries. */}}
{{- define "podflow.extraEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Pod security both services run with: non-root, no privilege escalation, no capabilities. */}}
{{- define "podflow.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities: { drop: ["ALL"] }
seccompProfile: { type: RuntimeDefault }
{{- end -}}
