{{/* The chart's name, or nameOverride: the app.kubernetes.io/name label. */}}
{{- define "sdp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The name of every object: the release name, with the chart's name appended unless already in it. */}}
{{- define "sdp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "sdp.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sdp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sdp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sdp.labels" -}}
{{ include "sdp.selectorLabels" . }}
app.kubernetes.io/part-of: simple-device-plugin
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "sdp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sdp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The manifest's text for the ConfigMap: a string as given (its comments kept), a mapping as YAML. */}}
{{- define "sdp.manifestText" -}}
{{- if kindIs "string" .Values.manifest -}}
{{- .Values.manifest -}}
{{- else -}}
{{- toYaml .Values.manifest -}}
{{- end -}}
{{- end -}}

{{/* "true" when the plugin serves api: dra resources: in daemonset mode (the node service has no token to reach the API server with) with dra.enabled; "" otherwise. */}}
{{- define "sdp.dra" -}}
{{- if and (eq .Values.mode "daemonset") .Values.dra.enabled -}}true{{- end -}}
{{- end -}}
