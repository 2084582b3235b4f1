{{- define "safezone.labels" -}}
app.kubernetes.io/name: safezone
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "safezone.selector" -}}
app.kubernetes.io/name: safezone
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Pod and container security every Safezone workload uses (Pod Security restricted). */}}
{{- define "safezone.podSecurity" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile: {type: RuntimeDefault}
{{- end }}

{{- define "safezone.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end }}

{{- define "safezone.minioEndpoint" -}}
{{- if .Values.minio.bundled -}}minio.{{ .Release.Namespace }}.svc:9000{{- else -}}{{ .Values.minio.endpoint }}{{- end -}}
{{- end }}

{{/* proxy.podCIDR as a container env entry, for the hub and the control plane alike: each
takes a caller's address from the last X-Forwarded-For hop only when the peer is in this
range (safezone/records/sources.py). Empty: nothing, and the proxy's own address is
recorded. */}}
{{- define "safezone.trustedProxiesEnv" -}}
{{- with .Values.proxy.podCIDR -}}
- {name: SAFEZONE_RECORDS_TRUSTED_PROXIES, value: {{ . | quote }}}
{{- end }}
{{- end }}
