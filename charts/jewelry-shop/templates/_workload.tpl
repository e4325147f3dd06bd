{{/*
A stateless workload: Deployment, Service and PodDisruptionBudget. Call with
(dict "root" $ "component" "web" "w" .Values.web "shop" true): shop
workloads get the shop image, environment and security context by default.
*/}}
{{- define "jewelry-shop.workload" -}}
{{- $root := .root }}
{{- $w := .w }}
{{- $name := printf "%s-%s" (include "jewelry-shop.fullname" $root) .component | trunc 63 | trimSuffix "-" }}
{{- $labels := dict "root" $root "component" .component }}
{{- $default := ternary $root.Values.image dict .shop }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "jewelry-shop.labels" $labels | nindent 4 }}
spec:
  {{- if and (eq .component "web") $w.autoscaling.enabled }}
  # The HPA owns the count; starting at its minimum makes the first install
  # wait for that many pods. Helm's three-way merge leaves the HPA's count
  # alone on upgrades that do not change this value.
  replicas: {{ $w.autoscaling.minReplicas }}
  {{- else }}
  replicas: {{ $w.replicas }}
  {{- end }}
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      {{- include "jewelry-shop.selectorLabels" $labels | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "jewelry-shop.labels" $labels | nindent 8 }}
      {{- if or .config $w.podAnnotations }}
      annotations:
        {{- if .config }}
        checksum/config: {{ .config | sha256sum }}
        {{- end }}
        {{- with $w.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
    spec:
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      enableServiceLinks: false
      terminationGracePeriodSeconds: 15
      containers:
        - name: {{ .component }}
          image: {{ include "jewelry-shop.image" (dict "image" $w.image "default" $default "root" $root) | quote }}
          imagePullPolicy: {{ include "jewelry-shop.pullPolicy" (dict "image" $w.image "default" $default) }}
          {{- with $w.command }}
          command:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $w.args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - name: http
              containerPort: {{ $w.port }}
              protocol: TCP
          {{- if or .shop $w.env }}
          env:
            {{- if .shop }}
            - name: SHOP_LISTEN
              value: {{ printf ":%d" (int $w.port) | quote }}
            {{- include "jewelry-shop.shopEnv" $root | nindent 12 }}
            {{- end }}
            {{- with $w.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- end }}
          {{- with $w.envFrom }}
          envFrom:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          readinessProbe:
            {{- toYaml $w.readinessProbe | nindent 12 }}
          livenessProbe:
            {{- toYaml $w.livenessProbe | nindent 12 }}
          resources:
            {{- toYaml $w.resources | nindent 12 }}
          {{- if .shop }}
          securityContext:
            {{- toYaml $root.Values.shopSecurityContext | nindent 12 }}
          {{- end }}
          {{- with .mounts }}
          volumeMounts:
            {{- toYaml . | nindent 12 }}
          {{- end }}
      {{- with .volumes }}
      volumes:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $w.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      tolerations:
        {{- include "jewelry-shop.tolerations" (dict "root" $root "extra" $w.tolerations) | nindent 8 }}
      topologySpreadConstraints:
        - maxSkew: {{ $root.Values.topologySpread.maxSkew }}
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: {{ $root.Values.topologySpread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "jewelry-shop.selectorLabels" $labels | nindent 14 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "jewelry-shop.labels" $labels | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "jewelry-shop.selectorLabels" $labels | nindent 4 }}
  ports:
    - name: http
      port: {{ .servicePort | default $w.port }}
      targetPort: http
      protocol: TCP
{{- if or (gt (int $w.replicas) 1) (and (eq .component "web") $w.autoscaling.enabled) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "jewelry-shop.labels" $labels | nindent 4 }}
spec:
  maxUnavailable: {{ $w.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "jewelry-shop.selectorLabels" $labels | nindent 6 }}
{{- end }}
{{- end }}
