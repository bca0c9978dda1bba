{{/* Chart name, truncated to the 63 characters DNS labels allow. */}}
{{- define "readiness-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "readiness-operator.fullname" -}}
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

{{- define "readiness-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "readiness-operator.labels" -}}
helm.sh/chart: {{ include "readiness-operator.chart" . }}
{{ include "readiness-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: readiness-operator
{{- end }}

{{/* Selector labels: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "readiness-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "readiness-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "readiness-operator.serviceAccountName" -}}
{{- default (include "readiness-operator.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "readiness-operator.webhookServiceName" -}}
{{- printf "%s-webhook" (include "readiness-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "readiness-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "readiness-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Secret holding the webhook serving certificate (self-signed: written by the operator;
     cert-manager: written by cert-manager and mounted). */}}
{{- define "readiness-operator.certSecretName" -}}
{{- printf "%s-webhook-tls" (include "readiness-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "readiness-operator.webhookConfigurationName" -}}
{{- default (include "readiness-operator.fullname" .) .Values.webhook.configurationName }}
{{- end }}

{{/* The one ValidatingAdmissionPolicy and binding holding every Enforce policy's rules. */}}
{{- define "readiness-operator.admissionPolicyName" -}}
{{- default (include "readiness-operator.fullname" .) .Values.vap.name }}
{{- end }}

{{- define "readiness-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- /* "namespace/name,..." of the Secrets policies may use for Prometheus credentials. */}}
{{- define "readiness-operator.prometheusSecrets" -}}
{{- $refs := list -}}
{{- range .Values.prometheus.secrets }}{{ $refs = append $refs (printf "%s/%s" .namespace .name) }}{{ end -}}
{{- join "," $refs -}}
{{- end }}

{{/* The leader-election Lease (in the release namespace). */}}
{{- define "readiness-operator.leaseName" -}}
{{- default (include "readiness-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Who owns a CRD now: "this-release" (absent, or installed by this release) or "other" (another
     release, kubectl, or chart 0.1.0's crds/). `helm template` sees no cluster: "this-release". */}}
{{- define "readiness-operator.crdOwner" -}}
{{- $existing := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" .name }}
{{- if not $existing }}this-release
{{- else }}
{{- $annotations := default (dict) $existing.metadata.annotations }}
{{- if and (eq (get $annotations "meta.helm.sh/release-name") .root.Release.Name) (eq (get $annotations "meta.helm.sh/release-namespace") .root.Release.Namespace) }}this-release
{{- else }}other
{{- end }}
{{- end }}
{{- end }}

{{/* The pod and container securityContext from values, without the fixed UID/GID when
     securityContext.omitUserAndGroup is set (OpenShift's restricted-v2 assigns them). */}}
{{- define "readiness-operator.podSecurityContext" -}}
{{- $ctx := .Values.securityContext.pod }}
{{- if .Values.securityContext.omitUserAndGroup }}{{ $ctx = omit $ctx "runAsUser" "runAsGroup" "fsGroup" }}{{ end }}
{{- toYaml $ctx }}
{{- end }}

{{- define "readiness-operator.containerSecurityContext" -}}
{{- $ctx := .Values.securityContext.container }}
{{- if .Values.securityContext.omitUserAndGroup }}{{ $ctx = omit $ctx "runAsUser" "runAsGroup" }}{{ end }}
{{- toYaml $ctx }}
{{- end }}

{{/* Whether to render one of the admission objects (.kind, .name): "yes" when absent or already this
     release's, "no" when it exists outside the release (written by an operator before the chart
     created these objects, or someone else's): Helm would refuse to adopt it, and it is left as it
     is (docs/operations.md, "Admission objects"). `helm template` sees no cluster: "yes". */}}
{{- define "readiness-operator.renderAdmissionObject" -}}
{{- $existing := lookup "admissionregistration.k8s.io/v1" .kind "" .name }}
{{- if not $existing }}yes
{{- else }}
{{- $annotations := default (dict) $existing.metadata.annotations }}
{{- if and (eq (get $annotations "meta.helm.sh/release-name") .root.Release.Name) (eq (get $annotations "meta.helm.sh/release-namespace") .root.Release.Namespace) }}yes
{{- else }}no
{{- end }}
{{- end }}
{{- end }}
