{{/*
Names, labels and the pieces every workload template shares.
*/}}

{{- define "rds-csi.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rds-csi.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rds-csi.labels" -}}
app.kubernetes.io/name: {{ include "rds-csi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "controller"). */}}
{{- define "rds-csi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rds-csi.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference: call with (dict "ctx" $ "image" .Values.images.frontend). */}}
{{- define "rds-csi.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .ctx.Chart.AppVersion) -}}
{{- end -}}

{{/* The unprivileged user every non-privileged container runs as. */}}
{{- define "rds-csi.uid" -}}65532{{- end -}}

{{/*
The security context of every container except nvme-helper (and the two node containers that
must be uid 0 without capabilities, which set their own): non-root, read-only root, no
capabilities, no privilege escalation, the runtime's default seccomp profile.
*/}}
{{- define "rds-csi.restrictedSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ include "rds-csi.uid" . }}
runAsGroup: {{ include "rds-csi.uid" . }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The log flags every rds-csi binary takes. */}}
{{- define "rds-csi.logArgs" -}}
- --log-format={{ .Values.logging.format }}
- --log-level={{ .Values.logging.level }}
{{- end -}}

{{/* Fails rendering on values that cannot work, with a message that says what to set. */}}
{{- define "rds-csi.validate" -}}
{{- if not .Values.rds.existingSecret -}}
{{- fail "rds.existingSecret is empty: name an existing Secret in the release namespace that holds the keys 'ssh-privatekey' (the RDS user's OpenSSH private key) and 'host-key' (the pinned RDS host key, e.g. from ssh-keyscan). Create it with: kubectl create secret generic rds-csi-ssh --from-file=ssh-privatekey=./id_ed25519 --from-file=host-key=./rds-host-key" -}}
{{- end -}}
{{- if and .Values.rds.nvmeAddress (not (regexMatch (include "rds-csi.ipPattern" .) .Values.rds.nvmeAddress)) -}}
{{- fail (printf "rds.nvmeAddress %q is not an IP address: the kernel's NVMe/TCP initiator does not resolve host names" .Values.rds.nvmeAddress) -}}
{{- end -}}
{{- range $key, $class := .Values.storageClasses -}}
{{- if and $class.enabled $class.parameters.nvmeAddress (not (regexMatch (include "rds-csi.ipPattern" $) $class.parameters.nvmeAddress)) -}}
{{- fail (printf "storageClasses.%s.parameters.nvmeAddress %q is not an IP address" $key $class.parameters.nvmeAddress) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* An IPv4 or IPv6 literal (shape only; the binaries check it fully). */}}
{{- define "rds-csi.ipPattern" -}}
^([0-9]{1,3}\.){3}[0-9]{1,3}$|^[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}$
{{- end -}}

{{/* The NVMe/TCP address: rds.nvmeAddress, else rds.address when that is an IP literal. */}}
{{- define "rds-csi.nvmeAddress" -}}
{{- if .Values.rds.nvmeAddress -}}
{{- .Values.rds.nvmeAddress -}}
{{- else if regexMatch (include "rds-csi.ipPattern" .) .Values.rds.address -}}
{{- .Values.rds.address -}}
{{- end -}}
{{- end -}}

{{/* The appliance directory in the /a/b form both binaries accept. */}}
{{- define "rds-csi.volumeBasePath" -}}
{{- printf "/%s" (trimPrefix "/" .Values.rds.volumeBasePath) -}}
{{- end -}}

{{/*
OTEL_* variables for an rds-csi binary. The K8S_* variables exist only to be expanded into
OTEL_RESOURCE_ATTRIBUTES (Kubernetes expands $(NAME) of variables defined before).
*/}}
{{- define "rds-csi.otelEnv" -}}
{{- if .Values.otel.endpoint }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.otel.endpoint | quote }}
{{- with .Values.otel.tracesSampler }}
- name: OTEL_TRACES_SAMPLER
  value: {{ . | quote }}
{{- end }}
{{- with .Values.otel.tracesSamplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
{{- $attrs := list "service.namespace=rds-csi" "k8s.namespace.name=$(K8S_NAMESPACE)" "k8s.pod.name=$(K8S_POD_NAME)" "k8s.node.name=$(K8S_NODE_NAME)" }}
{{- range $k, $v := .Values.otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- end }}
{{- end -}}

{{/*
The service account token, mounted only into the containers that call the Kubernetes API (the
pods set automountServiceAccountToken: false, so rds-gateway, which holds the RDS key, and the
livenessprobe get no token at all).
*/}}
{{- define "rds-csi.apiAccessVolume" -}}
- name: kube-api-access
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
{{- end -}}

{{- define "rds-csi.apiAccessMount" -}}
- name: kube-api-access
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end -}}

{{/* HTTP probes of an rds-csi binary on its metrics port: call with the port name. */}}
{{- define "rds-csi.httpProbes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ . }}
  initialDelaySeconds: 10
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 6
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ . }}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}
