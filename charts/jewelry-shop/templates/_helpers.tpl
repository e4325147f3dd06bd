{{/*
The chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "jewelry-shop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name that prefixes every resource: the release name when it already
contains the chart name, else <release>-<chart>.
*/}}
{{- define "jewelry-shop.fullname" -}}
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
The chart label value: name-version.
*/}}
{{- define "jewelry-shop.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels of every object. Call with (dict "root" $ "component" "web").
*/}}
{{- define "jewelry-shop.labels" -}}
helm.sh/chart: {{ include "jewelry-shop.chart" .root }}
{{ include "jewelry-shop.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: jewelry-shop
{{- end }}

{{/*
Selector labels of one component. Call with (dict "root" $ "component" "web").
*/}}
{{- define "jewelry-shop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jewelry-shop.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/*
An image reference "repository:tag". Call with (dict "image" .image "default"
$.Values.image "root" $): a workload's own image wins, key by key, over the
shop image; the tag defaults to the chart's appVersion. latest is refused.
*/}}
{{- define "jewelry-shop.image" -}}
{{- $img := merge (deepCopy (default dict .image)) .default }}
{{- $tag := toString (default .root.Chart.AppVersion $img.tag) }}
{{- if eq $tag "latest" }}
{{- fail (printf "image %s: the tag latest is not allowed, pin a version" $img.repository) }}
{{- end }}
{{- printf "%s:%s" $img.repository $tag }}
{{- end }}

{{/*
The pull policy of an image, with the same defaulting as jewelry-shop.image.
*/}}
{{- define "jewelry-shop.pullPolicy" -}}
{{- $img := merge (deepCopy (default dict .image)) .default }}
{{- default "IfNotPresent" $img.pullPolicy }}
{{- end }}

{{/*
Tolerations of the stateless workloads: leave a NotReady or unreachable node
after nodeFailureTolerationSeconds instead of Kubernetes' 300 s. Call with
(dict "root" $ "extra" .tolerations).
*/}}
{{- define "jewelry-shop.tolerations" -}}
- key: node.kubernetes.io/not-ready
  operator: Exists
  effect: NoExecute
  tolerationSeconds: {{ .root.Values.nodeFailureTolerationSeconds }}
- key: node.kubernetes.io/unreachable
  operator: Exists
  effect: NoExecute
  tolerationSeconds: {{ .root.Values.nodeFailureTolerationSeconds }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Names derived from the full name.
*/}}
{{- define "jewelry-shop.redis.fullname" -}}
{{- printf "%s-redis" (include "jewelry-shop.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jewelry-shop.redis.headless" -}}
{{- printf "%s-redis-headless" (include "jewelry-shop.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The DNS name of Redis pod number .i: the name Redis and Sentinel announce.
Call with (dict "root" $ "i" 0).
*/}}
{{- define "jewelry-shop.redis.podHost" -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "jewelry-shop.redis.fullname" .root) (int .i) (include "jewelry-shop.redis.headless" .root) .root.Release.Namespace .root.Values.clusterDomain }}
{{- end }}

{{/*
The comma-separated host:port list of every Sentinel.
*/}}
{{- define "jewelry-shop.redis.sentinels" -}}
{{- $hosts := list }}
{{- range $i := until (int .Values.redis.replicas) }}
{{- $hosts = append $hosts (printf "%s:26379" (include "jewelry-shop.redis.podHost" (dict "root" $ "i" $i))) }}
{{- end }}
{{- join "," $hosts }}
{{- end }}

{{/*
The operator's Secret with the shop user's password.
*/}}
{{- define "jewelry-shop.postgresql.secret" -}}
{{- default (printf "%s.%s.credentials.postgresql.acid.zalan.do" .Values.postgresql.user .Values.postgresql.clusterName) .Values.postgresql.credentialsSecret }}
{{- end }}

{{/*
The environment every shop container gets: how to reach PostgreSQL (the
primary Service, credentials from the operator's Secret as PGUSER and
PGPASSWORD, which the driver reads) and Redis (through the Sentinels).
*/}}
{{- define "jewelry-shop.shopEnv" -}}
{{- $pg := .Values.postgresql -}}
- name: SHOP_PG_DSN
  value: {{ printf "host=%s port=5432 dbname=%s %s" (default $pg.clusterName $pg.host) $pg.database $pg.connectionOptions | trim | quote }}
- name: PGUSER
  valueFrom:
    secretKeyRef:
      name: {{ include "jewelry-shop.postgresql.secret" . }}
      key: username
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "jewelry-shop.postgresql.secret" . }}
      key: password
{{- if .Values.redis.enabled }}
- name: SHOP_REDIS_SENTINELS
  value: {{ include "jewelry-shop.redis.sentinels" . | quote }}
- name: SHOP_REDIS_MASTER
  value: {{ .Values.redis.masterName | quote }}
{{- end }}
{{- with .Values.shopEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
