{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "connection-flask.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. As in `helm create`: a release named like the chart (or containing its
name) is not repeated, so `helm install connection-flask ...` yields `connection-flask`;
fullnameOverride keeps that name under any release name.
*/}}
{{- define "connection-flask.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version as used by the chart label.
*/}}
{{- define "connection-flask.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "connection-flask.labels" -}}
helm.sh/chart: {{ include "connection-flask.chart" . }}
{{ include "connection-flask.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dune-daq
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: only name and instance, never anything that changes on upgrade
(selectors are immutable).
*/}}
{{- define "connection-flask.selectorLabels" -}}
app.kubernetes.io/name: {{ include "connection-flask.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "connection-flask.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "connection-flask.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: digest wins over tag; the tag defaults to the chart's appVersion.
*/}}
{{- define "connection-flask.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Name of the Secret the chart creates for token values given inline ("" when there are none).
*/}}
{{- define "connection-flask.authSecretName" -}}
{{- if or (and .Values.writeToken.value (not .Values.writeToken.existingSecret)) (and .Values.readToken.value (not .Values.readToken.existingSecret)) }}
{{- printf "%s-auth" (include "connection-flask.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Env entries for the write and read tokens (CONNECTION_FLASK_WRITE_TOKEN / _READ_TOKEN), each from
its existingSecret or from the chart's Secret; shared by the Deployment and the helm test pod.
*/}}
{{- define "connection-flask.tokenEnv" -}}
{{- $chartSecret := include "connection-flask.authSecretName" . }}
{{- range $env, $token := dict "CONNECTION_FLASK_WRITE_TOKEN" .Values.writeToken "CONNECTION_FLASK_READ_TOKEN" .Values.readToken }}
{{- if or $token.existingSecret $token.value }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $token.existingSecret | default $chartSecret }}
      key: {{ $token.secretKey }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Namespace for the monitoring objects: their own override, else the release namespace.
*/}}
{{- define "connection-flask.monitoringNamespace" -}}
{{- default .root.Release.Namespace .namespace }}
{{- end }}

{{/*
Restricted container security context (Pod Security "restricted" profile).
*/}}
{{- define "connection-flask.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/*
"true" when CONNECTION_FLASK_STORE comes from a Secret (store.redis.url or .existingSecret).
*/}}
{{- define "connection-flask.storeFromSecret" -}}
{{- if or .Values.store.redis.url .Values.store.redis.existingSecret }}true{{ end }}
{{- end }}

{{/*
"true" when the registry is on Redis: a URL from a Secret, or one given as config.store.
*/}}
{{- define "connection-flask.redisStore" -}}
{{- if or (include "connection-flask.storeFromSecret" .) (ne .Values.config.store "memory") }}true{{ end }}
{{- end }}

{{/*
Name of the Secret the chart creates for an inline store.redis.url ("" when it creates none).
*/}}
{{- define "connection-flask.storeSecretName" -}}
{{- if and .Values.store.redis.url (not .Values.store.redis.existingSecret) }}
{{- printf "%s-store" (include "connection-flask.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The Deployment strategy: the one given, else Recreate for the memory store (never two registries
side by side) and, for Redis, a rolling update that adds a pod before removing one.
*/}}
{{- define "connection-flask.strategy" -}}
{{- if .Values.strategy }}
{{- toYaml .Values.strategy }}
{{- else if include "connection-flask.redisStore" . }}
type: RollingUpdate
rollingUpdate:
  maxSurge: 1
  maxUnavailable: 0
{{- else }}
type: Recreate
{{- end }}
{{- end }}

{{/*
Refuse values that would split the registry or block every eviction.
*/}}
{{- define "connection-flask.checkScaling" -}}
{{- if not (include "connection-flask.redisStore" .) }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail (printf "replicaCount (%d) > 1 needs the Redis store (store.redis.url or store.redis.existingSecret): with the memory store each pod would hold its own registry behind the one Service" (int .Values.replicaCount)) }}
{{- end }}
{{- if gt (int .Values.gunicorn.workers) 1 }}
{{- fail (printf "gunicorn.workers (%d) > 1 needs the Redis store (store.redis.url or store.redis.existingSecret): with the memory store each worker would hold its own registry" (int .Values.gunicorn.workers)) }}
{{- end }}
{{- end }}
{{- $min := .Values.podDisruptionBudget.minAvailable }}
{{- if and .Values.podDisruptionBudget.enabled (gt (int .Values.replicaCount) 1) (not (kindIs "string" $min)) }}
{{- if ge (int $min) (int .Values.replicaCount) }}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) must be below replicaCount (%d), or no pod could ever be evicted" (int $min) (int .Values.replicaCount)) }}
{{- end }}
{{- end }}
{{- end }}
