{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "ruvon-workers.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the prefix of every object name. Kept to 50 characters so that
suffixes such as "-worker-metrics" still fit in 63.
*/}}
{{- define "ruvon-workers.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ruvon-workers.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels. Call with (dict "ctx" $ "component" "worker").
*/}}
{{- define "ruvon-workers.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ruvon-workers.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/*
Standard labels. Call with (dict "ctx" $ "component" "worker").
*/}}
{{- define "ruvon-workers.labels" -}}
helm.sh/chart: {{ include "ruvon-workers.chart" .ctx }}
{{ include "ruvon-workers.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: ruvon-workers
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "ruvon-workers.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ruvon-workers.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ruvon-workers.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Names of the configuration objects.
*/}}
{{- define "ruvon-workers.envConfigMapName" -}}
{{- printf "%s-env" (include "ruvon-workers.fullname" .) }}
{{- end }}

{{- define "ruvon-workers.registryConfigMapName" -}}
{{- printf "%s-registry" (include "ruvon-workers.fullname" .) }}
{{- end }}

{{/*
Secret holding DATABASE_URL and CELERY_BROKER_URL: the user's existing
Secret, or the one this chart renders.
*/}}
{{- define "ruvon-workers.secretName" -}}
{{- if .Values.secrets.existingSecret.name }}
{{- .Values.secrets.existingSecret.name }}
{{- else }}
{{- include "ruvon-workers.fullname" . }}
{{- end }}
{{- end }}

{{/*
True ("true") when the chart renders the connection Secret itself.
*/}}
{{- define "ruvon-workers.createSecret" -}}
{{- if not .Values.secrets.existingSecret.name }}true{{ end }}
{{- end }}

{{/*
Key names inside the connection Secret. The chart-rendered Secret uses the
same key names as an existing one would by default.
*/}}
{{- define "ruvon-workers.databaseUrlKey" -}}
{{- if .Values.secrets.existingSecret.name }}{{ .Values.secrets.existingSecret.databaseUrlKey }}{{ else }}DATABASE_URL{{ end }}
{{- end }}

{{- define "ruvon-workers.brokerUrlKey" -}}
{{- if .Values.secrets.existingSecret.name }}{{ .Values.secrets.existingSecret.brokerUrlKey }}{{ else }}CELERY_BROKER_URL{{ end }}
{{- end }}

{{- define "ruvon-workers.redisPasswordKey" -}}
{{- if .Values.secrets.existingSecret.name }}{{ .Values.secrets.existingSecret.redisPasswordKey }}{{ else }}REDIS_PASSWORD{{ end }}
{{- end }}

{{/*
Bare Redis password for the chart-rendered Secret: secrets.redisPassword, or
the password part of secrets.brokerUrl.
*/}}
{{- define "ruvon-workers.redisPassword" -}}
{{- if .Values.secrets.redisPassword }}
{{- .Values.secrets.redisPassword }}
{{- else if .Values.secrets.brokerUrl }}
{{- $userinfo := (urlParse .Values.secrets.brokerUrl).userinfo }}
{{- if contains ":" $userinfo }}
{{- index (splitn ":" 2 $userinfo) "_1" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ruvon-workers.flowerSecretName" -}}
{{- if .Values.flower.basicAuth.existingSecret }}
{{- .Values.flower.basicAuth.existingSecret }}
{{- else }}
{{- printf "%s-flower" (include "ruvon-workers.fullname" .) }}
{{- end }}
{{- end }}

{{- define "ruvon-workers.flowerSecretKey" -}}
{{- if .Values.flower.basicAuth.existingSecret }}{{ .Values.flower.basicAuth.existingSecretKey }}{{ else }}FLOWER_BASIC_AUTH{{ end }}
{{- end }}

{{/*
Connection env entries. Secrets are always referenced, never inlined.
Call with (dict "ctx" $ "database" true "broker" true).
*/}}
{{- define "ruvon-workers.secretEnv" -}}
{{- if .database }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "ruvon-workers.secretName" .ctx }}
      key: {{ include "ruvon-workers.databaseUrlKey" .ctx }}
{{- end }}
{{- if .broker }}
- name: CELERY_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "ruvon-workers.secretName" .ctx }}
      key: {{ include "ruvon-workers.brokerUrlKey" .ctx }}
{{- end }}
{{- end }}

{{/*
The broker egress rule of the NetworkPolicy, as JSON {"ports": [...], "to": [...]}.
Ports: networkPolicy.broker.port, else the deprecated networkPolicy.redis.port,
else read from secrets.brokerUrl: its port (redis/rediss default 6379); for
sentinel:// the first sentinel's port (default 26379) plus 6379 for the master.
With secrets.existingSecret the URL cannot be read while rendering: 6379.
Peers: networkPolicy.broker.to, else networkPolicy.redis.to.
*/}}
{{- define "ruvon-workers.networkPolicy.broker" -}}
{{- $np := .Values.networkPolicy }}
{{- $broker := $np.broker | default dict }}
{{- $legacy := $np.redis | default dict }}
{{- $ports := list 6379 }}
{{- if $broker.port }}
{{- $ports = list (int $broker.port) }}
{{- else if $legacy.port }}
{{- $ports = list (int $legacy.port) }}
{{- else if and (not .Values.secrets.existingSecret.name) .Values.secrets.brokerUrl }}
{{- $url := urlParse (first (splitList ";" .Values.secrets.brokerUrl)) }}
{{- $explicit := regexFind "[0-9]+$" (regexFind ":[0-9]+$" $url.host) }}
{{- if eq $url.scheme "sentinel" }}
{{- $ports = list (int (default "26379" $explicit)) 6379 }}
{{- else }}
{{- $ports = list (int (default "6379" $explicit)) }}
{{- end }}
{{- end }}
{{- toJson (dict "ports" ($ports | uniq) "to" ($broker.to | default $legacy.to | default list)) }}
{{- end }}

{{/*
Queues the worker consumes, as passed to --queues; empty when the worker
consumes the default queue and every step queue of the registry.
*/}}
{{- define "ruvon-workers.queues" -}}
{{- join "," .Values.worker.queues }}
{{- end }}

{{/*
Redis lists the KEDA redis trigger watches, as a JSON list.
*/}}
{{- define "ruvon-workers.kedaQueues" -}}
{{- $queues := .Values.keda.redis.queues | default .Values.worker.queues | default (list .Values.worker.defaultQueue) }}
{{- toJson $queues }}
{{- end }}

{{/*
terminationGracePeriodSeconds of the worker: the soft shutdown timeout given
to Celery plus a margin for the cold shutdown that follows it.
*/}}
{{- define "ruvon-workers.terminationGracePeriodSeconds" -}}
{{- add (int .Values.worker.softShutdownTimeout) (int .Values.worker.terminationGraceMarginSeconds) }}
{{- end }}

{{/*
Checksums that roll the pods when their configuration changes.
*/}}
{{- define "ruvon-workers.configChecksum" -}}
{{- $env := include (print .Template.BasePath "/configmap-env.yaml") . }}
{{- $registry := include (print .Template.BasePath "/configmap-registry.yaml") . }}
{{- print $env $registry | sha256sum }}
{{- end }}

{{- define "ruvon-workers.secretChecksum" -}}
{{- include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}

{{/*
Volume and mount for the writable /tmp (the root filesystem is read-only).
*/}}
{{- define "ruvon-workers.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.worker.tmpSizeLimit }}
{{- end }}

{{- define "ruvon-workers.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
"true" when a value is set: neither null/absent nor the empty string.
*/}}
{{- define "ruvon-workers.isSet" -}}
{{- if not (or (kindIs "invalid" .) (eq (toString .) "")) }}true{{ end }}
{{- end }}

{{/*
Checks that a JSON schema cannot express. Each one fails the render with a
message naming the values involved. Included from templates/validate.yaml and
again where the values are used, so that it also guards renders done with
--skip-schema-validation.
*/}}
{{- define "ruvon-workers.validate" -}}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are mutually exclusive: the HPA and the KEDA ScaledObject would fight over the worker Deployment. Set autoscaling.enabled=false to scale with KEDA." }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) must not be greater than autoscaling.maxReplicas (%d)." (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- end }}
{{- if and .Values.keda.enabled (gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) }}
{{- fail (printf "keda.minReplicaCount (%d) must not be greater than keda.maxReplicaCount (%d)." (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) }}
{{- end }}
{{- if and .Values.keda.enabled (eq .Values.keda.trigger "redis") (not .Values.keda.redis.address) }}
{{- fail "keda.redis.address is required with keda.trigger=redis: the host:port of the broker's Redis as the KEDA operator reaches it (e.g. redis-master.redis.svc:6379)." }}
{{- end }}
{{- if not .Values.secrets.existingSecret.name }}
{{- if or (not .Values.secrets.databaseUrl) (not .Values.secrets.brokerUrl) }}
{{- fail "secrets: set secrets.existingSecret.name to a Secret holding DATABASE_URL and CELERY_BROKER_URL (recommended), or set both secrets.databaseUrl and secrets.brokerUrl for a chart-managed Secret." }}
{{- end }}
{{- if and .Values.keda.enabled (eq .Values.keda.trigger "redis") .Values.keda.redis.auth (not (include "ruvon-workers.redisPassword" .)) }}
{{- fail "keda.redis.auth is true but no Redis password is known: set secrets.redisPassword, put the password in secrets.brokerUrl (redis://:password@host:6379/0), or set keda.redis.auth=false." }}
{{- end }}
{{- end }}
{{- if and .Values.registry.files (not (hasKey .Values.registry.files .Values.registry.registryFile)) }}
{{- fail (printf "registry.files must contain the registry file %q (registry.registryFile); it has: %s." .Values.registry.registryFile (keys .Values.registry.files | sortAlpha | join ", ")) }}
{{- end }}
{{- if .Values.podDisruptionBudget.enabled }}
{{- $min := include "ruvon-workers.isSet" .Values.podDisruptionBudget.minAvailable }}
{{- $max := include "ruvon-workers.isSet" .Values.podDisruptionBudget.maxUnavailable }}
{{- if and (not $min) (not $max) }}
{{- fail "podDisruptionBudget: set one of minAvailable and maxUnavailable (or podDisruptionBudget.enabled=false)." }}
{{- end }}
{{- if and $min $max }}
{{- fail "podDisruptionBudget: set only one of minAvailable and maxUnavailable; set the other to \"\"." }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The server's Secret: the session key (always), and the admin token unless
server.tokens.existingSecret names a tokens file.
*/}}
{{- define "ruvon-workers.serverSecretName" -}}
{{- printf "%s-server" (include "ruvon-workers.fullname" .) }}
{{- end }}
