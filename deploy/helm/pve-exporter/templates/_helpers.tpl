{{/*
Chart name, truncated to 63 characters (DNS label limit).
*/}}
{{- define "pve-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. Kept at 50 characters so that suffixes such as "-hypervisors" and
"-<probe name>" still fit in 63.
*/}}
{{- define "pve-exporter.fullname" -}}
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

{{- define "pve-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pve-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pve-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pve-exporter.labels" -}}
helm.sh/chart: {{ include "pve-exporter.chart" . }}
{{ include "pve-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Name of the Secret holding pve.yml, and the key inside it.
*/}}
{{- define "pve-exporter.secretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- include "pve-exporter.fullname" . }}
{{- end }}
{{- end }}

{{- define "pve-exporter.secretKey" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecretKey }}
{{- else -}}
pve.yml
{{- end }}
{{- end }}

{{/*
The rendered pve.yml. Fails early with a message saying what to set.
*/}}
{{- define "pve-exporter.pveYml" -}}
{{- if and .Values.existingSecret .Values.config }}
{{- fail "pve-exporter: set either `config` or `existingSecret`, not both" }}
{{- end }}
{{- if not (or .Values.existingSecret .Values.config) }}
{{- fail "pve-exporter: no PVE credentials: set `config` (the pve.yml modules) or `existingSecret` (a Secret with key pve.yml)" }}
{{- end }}
{{- $caFile := include "pve-exporter.caFile" . }}
{{- $modules := dict }}
{{- range $name, $module := .Values.config }}
{{- $m := deepCopy $module }}
{{- /* A fingerprint pin replaces chain validation, so pinned modules get no CA. */}}
{{- if and $caFile (not (hasKey $m "ca_file")) (not (hasKey $m "fingerprint")) (ne (toString (get $m "verify_ssl")) "false") }}
{{- $_ := set $m "ca_file" $caFile }}
{{- $_ := set $m "verify_ssl" true }}
{{- end }}
{{- if not (hasKey $m "targets") }}
{{- $allowed := include "pve-exporter.defaultTargets" (dict "root" $ "module" $name) | fromJsonArray }}
{{- if $allowed }}
{{- $_ := set $m "targets" $allowed }}
{{- end }}
{{- end }}
{{- $_ := set $modules $name $m }}
{{- end }}
{{- toYaml $modules }}
{{- end }}

{{/*
Path of the mounted CA (empty without one).
*/}}
{{- define "pve-exporter.caFile" -}}
{{- if and .Values.ca.secretName .Values.ca.configMapName }}
{{- fail "pve-exporter: set ca.secretName or ca.configMapName, not both" }}
{{- end }}
{{- if or .Values.ca.secretName .Values.ca.configMapName -}}
/etc/pve-exporter/ca/ca.pem
{{- end }}
{{- end }}

{{/*
Default allow-list of one module (JSON array): allowedTargets, else the hypervisors' Service
names and addresses plus the hosts of the module's probes.
*/}}
{{- define "pve-exporter.defaultTargets" -}}
{{- $root := .root }}
{{- $targets := list }}
{{- if $root.Values.allowedTargets }}
{{- $targets = $root.Values.allowedTargets }}
{{- else }}
{{- if $root.Values.hypervisors.enabled }}
{{- $svc := include "pve-exporter.hypervisorsName" $root }}
{{- range $root.Values.hypervisors.nodes }}
{{- $targets = append $targets (printf "%s.%s.%s.svc" .name $svc $root.Release.Namespace) }}
{{- $targets = append $targets .ip }}
{{- end }}
{{- end }}
{{- if $root.Values.probes.enabled }}
{{- range $root.Values.probes.targets }}
{{- if eq .module $.module }}
{{- $targets = concat $targets .hosts }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $targets | uniq | toJson }}
{{- end }}

{{- define "pve-exporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Exporter arguments: config file, collector switches, extra flags.
*/}}
{{- define "pve-exporter.args" -}}
- --config.file=/etc/prometheus/pve.yml
{{- range $name, $on := .Values.collectors }}
{{- if $on }}
- --collector.{{ $name }}
{{- else }}
- --no-collector.{{ $name }}
{{- end }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{- define "pve-exporter.proberUrl" -}}
{{- if .Values.probes.proberUrl }}
{{- .Values.probes.proberUrl }}
{{- else }}
{{- printf "%s.%s.svc:%d" (include "pve-exporter.fullname" .) .Release.Namespace (int .Values.service.port) }}
{{- end }}
{{- end }}

{{- define "pve-exporter.hypervisorsName" -}}
{{- printf "%s-hypervisors" (include "pve-exporter.fullname" .) }}
{{- end }}

{{/*
scrape_configs for a Prometheus without the Operator (kubernetes_sd_configs, role endpoints), as
in deploy/prometheus/kubernetes/prometheus.kubernetes.yml with this release's names; printed by
NOTES.txt when serviceMonitor is off. test/deploy-helm.test.ts checks that both say the same.
*/}}
{{- define "pve-exporter.scrapeConfigs" -}}
{{- $ns := .Release.Namespace }}
{{- $svc := include "pve-exporter.fullname" . }}
{{- $hyp := include "pve-exporter.hypervisorsName" . }}
{{- $module := "default" }}
{{- if .Values.config }}{{ $module = keys .Values.config | sortAlpha | first }}{{ end }}
{{- $sd := printf "kubernetes_sd_configs:\n  - role: endpoints\n    namespaces:\n      names: [%s]" $ns }}
{{- if .Values.hypervisors.enabled }}
{{- range $job := list "pve-cluster" "pve-node" }}
- job_name: {{ $job }}
  metrics_path: /pve
  {{- if eq $job "pve-cluster" }}
  scrape_timeout: 25s
  {{- end }}
  params:
    module: [{{ $module }}]
    cluster: ['{{ ternary "1" "0" (eq $job "pve-cluster") }}']
    node: ['{{ ternary "0" "1" (eq $job "pve-cluster") }}']
  {{- $sd | nindent 2 }}
  relabel_configs:
    - source_labels: [__meta_kubernetes_service_name, __meta_kubernetes_endpoint_port_name]
      regex: {{ $hyp }};node-exporter
      action: keep
    {{- if eq $job "pve-cluster" }}
    - source_labels: [__meta_kubernetes_endpoint_hostname]
      regex: {{ (first $.Values.hypervisors.nodes).name }}
      action: keep
    {{- end }}
    - source_labels: [__meta_kubernetes_endpoint_hostname, __meta_kubernetes_service_name, __meta_kubernetes_namespace]
      separator: .
      regex: (.+)
      replacement: $1.svc
      target_label: __param_target
    - source_labels: [__meta_kubernetes_endpoint_hostname]
      target_label: instance
    - source_labels: [__meta_kubernetes_endpoint_hostname]
      target_label: pve_node
    - target_label: cluster
      replacement: pvec  # your PVE cluster name (pvecm status)
    - target_label: __address__
      replacement: {{ $svc }}.{{ $ns }}.svc:{{ $.Values.service.port }}
{{- end }}
{{- end }}
- job_name: {{ .Values.serviceMonitor.jobName }}
  metrics_path: /metrics
  {{- $sd | nindent 2 }}
  relabel_configs:
    - source_labels: [__meta_kubernetes_service_name, __meta_kubernetes_endpoint_port_name]
      regex: {{ $svc }};http
      action: keep
    - source_labels: [__meta_kubernetes_pod_name]
      target_label: pod
{{- if .Values.hypervisors.enabled }}
- job_name: {{ .Values.hypervisors.serviceMonitor.jobName }}
  metrics_path: /metrics
  {{- $sd | nindent 2 }}
  relabel_configs:
    - source_labels: [__meta_kubernetes_service_name, __meta_kubernetes_endpoint_port_name]
      regex: {{ $hyp }};node-exporter
      action: keep
    - source_labels: [__meta_kubernetes_endpoint_hostname]
      target_label: instance
    - target_label: cluster
      replacement: pvec  # your PVE cluster name (pvecm status)
{{- end }}
{{- end }}
