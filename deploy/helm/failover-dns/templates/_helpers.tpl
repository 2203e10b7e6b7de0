{{- define "failover-dns.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "failover-dns.fullname" -}}
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

{{- define "failover-dns.selectorLabels" -}}
app.kubernetes.io/name: {{ include "failover-dns.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "failover-dns.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "failover-dns.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "failover-dns.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "failover-dns.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The rules a watched scope needs: list/watch the kinds, patch their status, Events,
and list/watch (read-only) the Services, EndpointSlices, Ingresses and Gateways that
checks and records may point at. */}}
{{- define "failover-dns.watchRules" -}}
- apiGroups: [failoverdns.io]
  resources: [healthchecks, failoverrecords]
  verbs: [list, watch]
- apiGroups: [failoverdns.io]
  resources: [healthchecks/status, failoverrecords/status]
  verbs: [patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [services]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [list, watch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways]
  verbs: [list, watch]
{{- end }}

{{/* The `helm test` pod's labels: its own name, so that neither the Deployment nor the
Services select it. */}}
{{- define "failover-dns.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "failover-dns.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
