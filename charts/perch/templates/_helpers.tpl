{{/* Names, labels and the values every template shares; refusals of values that cannot work. */}}

{{- define "perch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: object names, and the ClusterRole's (cluster-scoped, so the release is in it). */}}
{{- define "perch.fullname" -}}
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

{{- define "perch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "perch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "perch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "perch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: perch
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "perch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "perch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name the existing ServiceAccount to run as, or set serviceAccount.create=true" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* --namespace: the value, else with rbac.scope=namespace the release's namespace, else empty (all). */}}
{{- define "perch.watchNamespace" -}}
{{- if .Values.controller.namespace }}
{{- .Values.controller.namespace }}
{{- else if eq .Values.rbac.scope "namespace" }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{- define "perch.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/* Values the controller would refuse or that would run two leaders: said at install, naming the value. */}}
{{- define "perch.validate" -}}
{{- if not (has .Values.rbac.scope (list "cluster" "namespace")) }}
{{- fail (printf "rbac.scope: %q is neither cluster nor namespace; use cluster (a ClusterRole) or namespace (a Role in the watched namespace)" (toString .Values.rbac.scope)) }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount: %d replicas without leaderElection.enabled would all write the same Rollouts; set leaderElection.enabled=true or replicaCount=1" (int .Values.replicaCount)) }}
{{- end }}
{{- if not (has .Values.podAntiAffinity (list "soft" "hard" "none")) }}
{{- fail (printf "podAntiAffinity: %q is none of soft, hard, none" (toString .Values.podAntiAffinity)) }}
{{- end }}
{{- if not (has .Values.controller.logLevel (list "debug" "info" "warn" "error")) }}
{{- fail (printf "controller.logLevel: %q is none of debug, info, warn, error" (toString .Values.controller.logLevel)) }}
{{- end }}
{{- if not (has .Values.controller.logFormat (list "json" "text")) }}
{{- fail (printf "controller.logFormat: %q is neither json nor text" (toString .Values.controller.logFormat)) }}
{{- end }}
{{- if not (kindIs "slice" .Values.controller.allowedPrometheusUrls) }}
{{- fail "controller.allowedPrometheusUrls: give a list of URL prefixes, e.g. [http://prometheus.monitoring:9090]" }}
{{- end }}
{{- end }}
