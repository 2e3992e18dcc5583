{{/* Names, labels and the RBAC rules shared by the templates. */}}

{{- define "gatekeeper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gatekeeper.fullname" -}}
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

{{- define "gatekeeper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatekeeper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gatekeeper.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "gatekeeper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gatekeeper
{{- end -}}

{{- define "gatekeeper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gatekeeper.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Enabled router kinds, sorted, as a comma-separated string ("" when none). */}}
{{- define "gatekeeper.routers" -}}
{{- $on := list -}}
{{- range $kind, $enabled := .Values.routers -}}
{{- if $enabled -}}{{- $on = append $on $kind -}}{{- end -}}
{{- end -}}
{{- $on | sortAlpha | join "," -}}
{{- end -}}

{{/*
The controller's rules. Routing rules come from files/routing-rbac.json (generated from
gatekeeper/routing/rbac.py by `gatekeeper crd --chart`), for the enabled routers only.
*/}}
{{- define "gatekeeper.controllerRules" -}}
{{- $all := .Files.Get "files/routing-rbac.json" | fromJson -}}
{{- $rules := list
  (dict "apiGroups" (list "gatekeeper.dev") "resources" (list "gates") "verbs" (list "get" "list" "watch" "patch"))
  (dict "apiGroups" (list "gatekeeper.dev") "resources" (list "gates/status") "verbs" (list "get" "patch" "update"))
  (dict "apiGroups" (list "") "resources" (list "events") "verbs" (list "create" "patch"))
  (dict "apiGroups" (list "") "resources" (list "configmaps") "verbs" (list "get" "create" "update"))
-}}
{{- range $kind := keys .Values.routers | sortAlpha -}}
{{- if not (hasKey $all $kind) -}}
{{- fail (printf "routers.%s: unknown router; use one of: %s" $kind (keys $all | sortAlpha | join ", ")) -}}
{{- end -}}
{{- if index $.Values.routers $kind -}}
{{- $rules = concat $rules (index $all $kind) -}}
{{- end -}}
{{- end -}}
{{- toYaml $rules -}}
{{- end -}}

{{/* The controller's pods: the release's labels plus its component (the intake has its own). */}}
{{- define "gatekeeper.controllerSelectorLabels" -}}
{{ include "gatekeeper.selectorLabels" . }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "gatekeeper.intakeSelectorLabels" -}}
{{ include "gatekeeper.selectorLabels" . }}
app.kubernetes.io/component: intake
{{- end -}}

{{/* The Secret holding the bearer token (key `token`). */}}
{{- define "gatekeeper.tokenSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-token" (include "gatekeeper.fullname" .)) -}}
{{- end -}}

{{/* The Lease names the controller Role may renew: one per shard. */}}
{{- define "gatekeeper.leaseNames" -}}
{{- $names := list -}}
{{- if le (int .Values.shards) 1 -}}
{{- $names = append $names .Values.leaderElection.leaseName -}}
{{- else -}}
{{- range $i := until (int .Values.shards) -}}
{{- $names = append $names (printf "%s-shard-%d-of-%d" $.Values.leaderElection.leaseName $i (int $.Values.shards)) -}}
{{- end -}}
{{- end -}}
{{- $names | toJson -}}
{{- end -}}
