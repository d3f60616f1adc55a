{{/* Names, labels and the addresses every pod derives from its ordinal. */}}

{{- define "commitlog.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Short enough that "<fullname>-headless" and "<fullname>-<ordinal>" stay DNS labels. */}}
{{- define "commitlog.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "commitlog.headless" -}}
{{- printf "%s-headless" (include "commitlog.fullname" .) }}
{{- end }}

{{- define "commitlog.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "commitlog.selectorLabels" -}}
app.kubernetes.io/name: {{ include "commitlog.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "commitlog.labels" -}}
helm.sh/chart: {{ include "commitlog.chart" . }}
{{ include "commitlog.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "commitlog.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The stable DNS name of pod <ordinal> inside the cluster. */}}
{{- define "commitlog.podHost" -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "commitlog.fullname" .root) (int .ordinal) (include "commitlog.headless" .root) .root.Release.Namespace .root.Values.clusterDomain }}
{{- end }}

{{/* The Service clients use inside the cluster. */}}
{{- define "commitlog.clientHost" -}}
{{- printf "%s.%s.svc.%s" (include "commitlog.fullname" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{/* The CA every pod's certificate is issued from (kubernetes.io/tls: tls.crt, tls.key). */}}
{{- define "commitlog.caSecret" -}}
{{- default (printf "%s-ca" (include "commitlog.fullname" .)) .Values.tls.ca.existingSecret }}
{{- end }}

{{- define "commitlog.aclSecret" -}}
{{- default (printf "%s-acl" (include "commitlog.fullname" .)) .Values.acl.existingSecret }}
{{- end }}

{{/* Where a pod keeps its TLS files (ca.crt, tls.crt, tls.key), and the client flags that use them. */}}
{{- define "commitlog.tlsDir" -}}/etc/commitlog/tls{{- end }}
{{/* Where the init container that issues a certificate sees the CA (ca.pem, ca-key.pem). */}}
{{- define "commitlog.caDir" -}}/etc/commitlog/ca{{- end }}

{{/*
The init container that issues a certificate from the CA into the memory-backed tls
volume, laid out as ca.crt, tls.crt, tls.key. Only this container mounts the CA's key.
dict: root, kind (server | client), cn (a shell word), hosts (server: a shell word), days.
*/}}
{{- define "commitlog.certInitContainer" -}}
{{- $tlsDir := include "commitlog.tlsDir" .root }}
{{- $caDir := include "commitlog.caDir" .root -}}
- name: certificate
  image: {{ include "commitlog.image" .root }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: ["/bin/sh", "-ec"]
  args:
    - |
      out={{ $tlsDir }}
      commitlog cert {{ .kind }} --cn {{ .cn }} --ca-dir {{ $caDir }} --out "$out" \
        --name issued --force --days {{ int .days }}{{ if eq .kind "server" }} --host {{ .hosts }}{{ end }}
      mv "$out/issued.pem" "$out/tls.crt"
      mv "$out/issued-key.pem" "$out/tls.key"
      cp {{ $caDir }}/ca.pem "$out/ca.crt"
  {{- with .env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  resources:
    requests:
      cpu: 50m
      memory: 64Mi
    limits:
      memory: 256Mi
  securityContext:
    {{- toYaml .root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: ca
      mountPath: {{ $caDir }}
      readOnly: true
    - name: tls
      mountPath: {{ $tlsDir }}
{{- end }}

{{/* The volumes the certificate init container and its pod share. */}}
{{- define "commitlog.certVolumes" -}}
- name: ca
  secret:
    secretName: {{ include "commitlog.caSecret" . }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: ca.pem
      - key: tls.key
        path: ca-key.pem
- name: tls
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
{{- define "commitlog.clientTlsFlags" -}}
{{- if .Values.tls.enabled }} --ca-file {{ include "commitlog.tlsDir" . }}/ca.crt --cert-file {{ include "commitlog.tlsDir" . }}/tls.crt --key-file {{ include "commitlog.tlsDir" . }}/tls.key{{- end }}
{{- end }}

{{/* A majority of the voters: the PodDisruptionBudget never goes below it. */}}
{{- define "commitlog.quorum" -}}
{{- add (div (int .Values.replicas) 2) 1 }}
{{- end }}

{{/*
A probe of gRPC health for a service ("" = the process answers). Kubernetes' own gRPC
probe speaks plaintext only; with TLS the image's health-probe.mjs does the same call
with the pod's certificate.
*/}}
{{- define "commitlog.probe" -}}
{{- if .root.Values.tls.enabled }}
exec:
  command:
    - node
    - /app/deploy/health-probe.mjs
    - --addr
    - 127.0.0.1:{{ .root.Values.ports.rpc }}
    - --service
    - {{ .service | quote }}
    - --tls-dir
    - {{ include "commitlog.tlsDir" .root }}
{{- else }}
grpc:
  port: {{ .root.Values.ports.rpc }}
  service: {{ .service | quote }}
{{- end }}
{{- end }}

{{/* Ports of a per-pod load balancer: gossip too when peers dial the external names. */}}
{{- define "commitlog.lbPorts" -}}
- name: rpc
  port: {{ .Values.ports.rpc }}
  targetPort: {{ .Values.ports.rpc }}
  protocol: TCP
- name: http
  port: {{ .Values.ports.http }}
  targetPort: {{ .Values.ports.http }}
  protocol: TCP
{{- if .Values.service.lb.externalDomain }}
- name: gossip-tcp
  port: {{ .Values.ports.gossip }}
  targetPort: {{ .Values.ports.gossip }}
  protocol: TCP
- name: gossip-udp
  port: {{ .Values.ports.gossip }}
  targetPort: {{ .Values.ports.gossip }}
  protocol: UDP
{{- end }}
{{- end }}

{{/* The same ports in the DecoratorController hook's "port:targetPort[/PROTOCOL]" form. */}}
{{- define "commitlog.lbPortsAnnotation" -}}
{{- $ports := list }}
{{- range (include "commitlog.lbPorts" . | fromYamlArray) }}
{{- $ports = append $ports (printf "%v:%v%s" .port .targetPort (ternary "" (printf "/%s" .protocol) (eq .protocol "TCP"))) }}
{{- end }}
{{- join "," $ports }}
{{- end }}

{{/* The hook server's pods: never selected by the node's Services or budget. */}}
{{- define "commitlog.hookSelectorLabels" -}}
app.kubernetes.io/name: {{ include "commitlog.name" . }}-service-per-pod
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The pod's name and the host it advertises (its stable DNS name, or its external name), never 0.0.0.0. */}}
{{- define "commitlog.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_HOST
  {{- if and .Values.service.lb.enabled .Values.service.lb.externalDomain }}
  value: "$(POD_NAME).{{ .Values.service.lb.externalDomain }}"
  {{- else }}
  value: "$(POD_NAME).{{ include "commitlog.headless" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}"
  {{- end }}
{{- end }}
