{{/* Names and labels shared by every template. */}}
{{- define "order-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "order-service.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "order-service.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "order-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "order-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "order-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "order-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "order-service.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "order-service.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "order-service.dbSecretName" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- printf "%s-db" (include "order-service.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The env every container gets: the ConfigMap, the DSN from its Secret and, for SASL
with a password (SCRAM, PLAIN), KAFKA_SASL_PASSWORD from kafkaSasl.existingSecret. */}}
{{- define "order-service.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "order-service.fullname" . }}
env:
  - name: POSTGRES_DSN
    valueFrom:
      secretKeyRef:
        name: {{ include "order-service.dbSecretName" . }}
        key: {{ .Values.database.secretKey }}
  {{- with .Values.kafkaSasl.existingSecret }}
  - name: KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ . }}
        key: {{ $.Values.kafkaSasl.secretKey }}
  {{- end }}
{{- end -}}

{{/* The components that run as Deployments, with their CLI command. */}}
{{- define "order-service.components" -}}
api: api
relay: relay
worker: worker
{{- end -}}
