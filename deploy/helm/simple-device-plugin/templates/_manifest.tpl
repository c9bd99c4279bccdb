{{/*
The value manifest, checked, as JSON (read it back with fromJson).

It is a mapping, or the text of a manifest file (--set-file manifest=FILE).
values.schema.json checks a mapping before any template runs, but it cannot
look into a string; so a string is parsed here and gets the same checks,
which then fail the install instead of every plugin pod. The checks below
mirror definitions/manifest in values.schema.json rule for rule: change
both together. A mapping goes through them too, and passes, since the
schema already held it to the same rules.
*/}}
{{- define "sdp.manifest" -}}
{{- $m := required "values.manifest is required: the manifest of the resources to serve (a mapping, or --set-file manifest=FILE)" .Values.manifest -}}
{{- if kindIs "string" $m -}}
{{- /* fromYaml reads the first document only: empty ones before the
manifest are dropped, and a second one with content is refused, not lost. */ -}}
{{- $text := regexReplaceAll `\A(([ \t]*(#[^\n]*)?|---[ \t]*(#[^\n]*)?)\n)*` $m "" -}}
{{- if regexMatch `(?m)^(---|\.\.\.)([ \t].*)?\n(?s:.*)^[^#\s]` $text -}}
{{- fail "values.manifest holds more than one YAML document; a manifest is one document, so merge the resources lists" -}}
{{- end -}}
{{- $m = fromYaml $text -}}
{{- if and (hasKey $m "Error") (eq (len $m) 1) -}}
{{- $why := get $m "Error" | replace "error converting YAML to JSON: " "" | replace "yaml: " "" -}}
{{- if contains "cannot unmarshal" $why -}}
{{- $why = "it is not a mapping of apiVersion, kind and resources" -}}
{{- end -}}
{{- fail (printf "values.manifest does not parse as a manifest: %s; give the text of a manifest file (--set-file manifest=FILE) or the manifest as a mapping, and check it with simple-device-plugin validate" $why) -}}
{{- end -}}
{{- end -}}
{{- include "sdp.manifest.object" (dict "path" "" "value" $m "type" "manifest") -}}
{{- toJson $m -}}
{{- end -}}

{{/* The fields of each kind of mapping in a manifest, and their types (checked by sdp.manifest.value). */}}
{{- define "sdp.manifest.fields" -}}
manifest: {apiVersion: apiVersion, kind: kind, resources: resources}
resource:
  name: resourceName
  count: count
  ids: ids
  discover: discover
  idTemplate: string
  env: env
  annotations: annotations
  mounts: mounts
  devices: devices
  cdiDevices: cdiDevices
  cdi: cdi
  unhealthy: strings
  healthCheck: healthCheck
  topology: topology
  allocationPolicy: allocationPolicy
  nodes: strings
  preStartRequired: bool
  api: api
  dra: dra
mount: {hostPath: nonEmpty, containerPath: nonEmpty, readOnly: bool, perDevice: bool}
device: {hostPath: nonEmpty, containerPath: nonEmpty, permissions: permissions, perDevice: bool}
cdiDevice: {name: nonEmpty, perDevice: bool}
cdi: {spec: bool, kind: cdiKind}
healthCheck: {path: nonEmpty, interval: string}
topology: {numaNodes: numaNodes, nodeOf: nodeOf}
discover: {paths: strings, usb: usbList, groups: discoverGroups, share: share, containerPath: string, permissions: permissions}
usb: {vendor: usbID, product: usbID, serial: string}
discoverGroups: {key: nonEmpty, paths: groupPaths}
dra: {driver: driver, attributes: draAttributes, capacity: draCapacity}
{{- end -}}

{{/* The fields each kind of mapping requires. */}}
{{- define "sdp.manifest.required" -}}
manifest: [apiVersion, kind, resources]
resource: [name]
mount: [hostPath, containerPath]
device: [hostPath, containerPath]
cdiDevice: [name]
healthCheck: [path]
usb: [vendor, product]
discoverGroups: [key, paths]
{{- end -}}

{{/* sdp.manifest.fail (list PATH MESSAGE) fails the install, naming the value, the field and the fix. */}}
{{- define "sdp.manifest.fail" -}}
{{- $at := ternary "" (printf "%s: " (index . 0)) (eq (index . 0) "") -}}
{{- fail (printf "values.manifest: %s%s (fix the manifest; `simple-device-plugin validate FILE` lists every problem in it)" $at (index . 1)) -}}
{{- end -}}

{{/* sdp.manifest.kind names the YAML type of a value, for messages. */}}
{{- define "sdp.manifest.kind" -}}
{{- $k := kindOf . -}}
{{- if has $k (list "float64" "int64" "int") -}}a number
{{- else if eq $k "bool" -}}true or false
{{- else if eq $k "map" -}}a mapping
{{- else if eq $k "slice" -}}a list
{{- else if eq $k "string" -}}a string
{{- else -}}null
{{- end -}}
{{- end -}}

{{/* sdp.manifest.object (dict "path" P "value" V "type" T): V is a mapping of kind T, with known fields only, the required ones present. */}}
{{- define "sdp.manifest.object" -}}
{{- $path := .path -}}
{{- if not (kindIs "map" .value) -}}
{{- include "sdp.manifest.fail" (list $path (printf "must be a mapping, got %s" (include "sdp.manifest.kind" .value))) -}}
{{- end -}}
{{- $fields := get (include "sdp.manifest.fields" . | fromYaml) .type -}}
{{- $required := get (include "sdp.manifest.required" . | fromYaml) .type | default list -}}
{{- range $name := $required -}}
{{- if or (not (hasKey $.value $name)) (kindIs "invalid" (index $.value $name)) -}}
{{- include "sdp.manifest.fail" (list $path (printf "%s is required" $name)) -}}
{{- end -}}
{{- end -}}
{{- range $name, $v := .value -}}
{{- $at := ternary $name (printf "%s.%s" $.path $name) (eq $.path "") -}}
{{- if not (hasKey $fields $name) -}}
{{- include "sdp.manifest.fail" (list $at (printf "unknown field; the fields here are %s" (keys $fields | sortAlpha | join ", "))) -}}
{{- end -}}
{{- /* null is absent, as the plugin reads it (an empty env: whose entries are commented out). */ -}}
{{- if not (kindIs "invalid" $v) -}}
{{- include "sdp.manifest.value" (dict "path" $at "value" $v "type" (get $fields $name)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* sdp.manifest.list (dict "path" P "value" V "type" T "min" N): V is a list of at least N items, each checked as T. */}}
{{- define "sdp.manifest.list" -}}
{{- if not (kindIs "slice" .value) -}}
{{- include "sdp.manifest.fail" (list .path (printf "must be a list, got %s" (include "sdp.manifest.kind" .value))) -}}
{{- end -}}
{{- if lt (len .value) (int .min) -}}
{{- include "sdp.manifest.fail" (list .path "must not be empty") -}}
{{- end -}}
{{- range $i, $v := .value -}}
{{- include "sdp.manifest.value" (dict "path" (printf "%s[%d]" $.path $i) "value" $v "type" $.type) -}}
{{- end -}}
{{- end -}}

{{/* sdp.manifest.map (dict "path" P "value" V "key" REGEX "keyIs" WHAT "type" T): V maps keys matching REGEX to values checked as T. */}}
{{- define "sdp.manifest.map" -}}
{{- if not (kindIs "map" .value) -}}
{{- include "sdp.manifest.fail" (list .path (printf "must be a mapping, got %s" (include "sdp.manifest.kind" .value))) -}}
{{- end -}}
{{- range $k, $v := .value -}}
{{- if and $.key (not (regexMatch $.key $k)) -}}
{{- include "sdp.manifest.fail" (list $.path (printf "%q is not %s" $k $.keyIs)) -}}
{{- end -}}
{{- include "sdp.manifest.value" (dict "path" (printf "%s[%s]" $.path $k) "value" $v "type" $.type) -}}
{{- end -}}
{{- end -}}

{{/* sdp.manifest.int (dict "path" P "value" V "min" A "max" B): V is a whole number from A to B (B 0: no bound). */}}
{{- define "sdp.manifest.int" -}}
{{- $v := .value -}}
{{- $number := or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) -}}
{{- if not (and $number (eq (floor $v) (float64 $v))) -}}
{{- include "sdp.manifest.fail" (list .path (printf "must be a whole number, got %v" $v)) -}}
{{- end -}}
{{- if or (lt (float64 $v) (float64 .min)) (and .max (gt (float64 $v) (float64 .max))) -}}
{{- $range := ternary (printf "from %d to %d" (int .min) (int .max)) (printf "at least %d" (int .min)) (gt (int .max) 0) -}}
{{- include "sdp.manifest.fail" (list .path (printf "must be %s, got %v" $range $v)) -}}
{{- end -}}
{{- end -}}

{{/* sdp.manifest.string (dict "path" P "value" V "pattern" REGEX "is" WHAT): V is a string matching REGEX. */}}
{{- define "sdp.manifest.string" -}}
{{- if not (kindIs "string" .value) -}}
{{- include "sdp.manifest.fail" (list .path (printf "must be a string, got %s" (include "sdp.manifest.kind" .value))) -}}
{{- end -}}
{{- if and .pattern (not (regexMatch .pattern .value)) -}}
{{- include "sdp.manifest.fail" (list .path (printf "%q is not %s" .value .is)) -}}
{{- end -}}
{{- end -}}

{{/* sdp.manifest.value (dict "path" P "value" V "type" T): V is a T (the types of sdp.manifest.fields). */}}
{{- define "sdp.manifest.value" -}}
{{- $p := .path -}}
{{- $v := .value -}}
{{- $t := .type -}}
{{- if eq $t "apiVersion" -}}
{{- if not (and (kindIs "string" $v) (eq $v "simple-device-plugin/v1alpha1")) -}}
{{- include "sdp.manifest.fail" (list $p (printf "must be simple-device-plugin/v1alpha1, got %v" $v)) -}}
{{- end -}}
{{- else if eq $t "kind" -}}
{{- if not (and (kindIs "string" $v) (eq $v "Manifest")) -}}
{{- include "sdp.manifest.fail" (list $p (printf "must be Manifest, got %v" $v)) -}}
{{- end -}}
{{- else if eq $t "resources" -}}
{{- include "sdp.manifest.list" (dict "path" $p "value" $v "type" "resource" "min" 1) -}}
{{- else if has $t (list "resource" "mount" "device" "cdiDevice" "cdi" "healthCheck" "topology" "discover" "usb" "discoverGroups" "dra") -}}
{{- include "sdp.manifest.object" (dict "path" $p "value" $v "type" $t) -}}
{{- else if eq $t "resourceName" -}}
{{- include "sdp.manifest.string" (dict "path" $p "value" $v "pattern" `^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?\.)*[a-z0-9](?:[-a-z0-9]*[a-z0-9])?/[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$` "is" "an extended resource name: <DNS subdomain>/<name>, for example example.com/widget") -}}
{{- if regexMatch `kubernetes\.io/|^requests\.` $v -}}
{{- include "sdp.manifest.fail" (list $p (printf "%q is reserved (kubernetes.io/ anywhere, or a requests. prefix); use a domain you own, for example example.com/widget" $v)) -}}
{{- end -}}
{{- else if eq $t "count" -}}
{{- include "sdp.manifest.int" (dict "path" $p "value" $v "min" 1 "max" 0) -}}
{{- else if eq $t "ids" -}}
{{- include "sdp.manifest.list" (dict "path" $p "value" $v "type" "deviceID" "min" 1) -}}
{{- else if eq $t "deviceID" -}}
{{- include "sdp.manifest.string" (dict "path" $p "value" $v "pattern" `^[!-~]{1,63}$` "is" "a device ID: 1 to 63 printable ASCII characters, no spaces") -}}
{{- else if eq $t "strings" -}}
{{- include "sdp.manifest.list" (dict "path" $p "value" $v "type" "nonEmpty" "min" 0) -}}
{{- else if eq $t "nonEmpty" -}}
{{- include "sdp.manifest.string" (dict "path" $p "value" $v) -}}
{{- if eq $v "" -}}
{{- include "sdp.manifest.fail" (list $p "must not be empty") -}}
{{- end -}}
{{- else if eq $t "string" -}}
{{- include "sdp.manifest.string" (dict "path" $p "value" $v) -}}
{{- else if eq $t "bool" -}}
{{- if not (kindIs "bool" $v) -}}
{{- include "sdp.manifest.fail" (list $p (printf "must be true or false, got %v" $v)) -}}
{{- end -}}
{{- else if eq $t "env" -}}
{{- include "sdp.manifest.map" (dict "path" $p "value" $v "key" `^[A-Za-z_][A-Za-z0-9_]*$` "keyIs" "an environment variable name (letters, digits and _, not starting with a digit)" "type" "string") -}}
{{- else if eq $t "annotations" -}}
{{- include "sdp.manifest.map" (dict "path" $p "value" $v "key" `^(?:[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?)*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$` "keyIs" "an annotation key ([<DNS subdomain>/]<name>)" "type" "string") -}}
{{- else if eq $t "mounts" -}}
{{- include "sdp.manifest.list" (dict "path" $p "value" $v "type" "mount" "min" 0) -}}
{{- else if eq $t "devices" -}}
{{- include "sdp.manifest.list" (dict "path" $p "value" $v "type" "device" "min" 0) -}}
{{- else if eq $t "cdiDevices" -}}
{{- include "sdp.manifest.list" (dict "path" $p "value" $v "type" "cdiDevice" "min" 0) -}}
{{- else if eq $t "cdiKind" -}}
{{- include "sdp.manifest.string" (dict "path" $p "value" $v "pattern" `^[A-Za-z](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?/[A-Za-z](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$` "is" "a CDI kind: vendor/class, for example example.com/fpga") -}}
{{- else if eq $t "permissions" -}}
{{- if not (has $v (list "r" "w" "m" "rw" "wr" "rm" "mr" "wm" "mw" "rwm" "rmw" "wrm" "wmr" "mrw" "mwr")) -}}
{{- include "sdp.manifest.fail" (list $p (printf "must be r, w and m, each at most once (for example rw), got %v" $v)) -}}
{{- end -}}
{{- else if eq $t "allocationPolicy" -}}
{{- if not (has $v (list "packed" "spread" "first")) -}}
{{- include "sdp.manifest.fail" (list $p (printf "must be packed, spread or first, got %v" $v)) -}}
{{- end -}}
{{- else if eq $t "numaNodes" -}}
{{- include "sdp.manifest.int" (dict "path" $p "value" $v "min" 1 "max" 1024) -}}
{{- else if eq $t "nodeOf" -}}
{{- include "sdp.manifest.map" (dict "path" $p "value" $v "type" "numaNode") -}}
{{- else if eq $t "usbList" -}}
{{- include "sdp.manifest.list" (dict "path" $p "value" $v "type" "usb" "min" 0) -}}
{{- else if eq $t "groupPaths" -}}
{{- include "sdp.manifest.list" (dict "path" $p "value" $v "type" "nonEmpty" "min" 1) -}}
{{- else if eq $t "share" -}}
{{- /* 0 is the default, 1, as the plugin reads it. */ -}}
{{- include "sdp.manifest.int" (dict "path" $p "value" $v "min" 0 "max" 1000) -}}
{{- else if eq $t "usbID" -}}
{{- include "sdp.manifest.string" (dict "path" $p "value" $v "pattern" `^[0-9A-Fa-f]{4}$` "is" "a USB ID: its 4 hex digits, as lsusb shows them, quoted (\"0403\")") -}}
{{- else if eq $t "api" -}}
{{- if not (has $v (list "devicePlugin" "dra")) -}}
{{- include "sdp.manifest.fail" (list $p (printf "must be devicePlugin or dra, got %v" $v)) -}}
{{- end -}}
{{- else if eq $t "driver" -}}
{{- include "sdp.manifest.string" (dict "path" $p "value" $v "pattern" `^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$` "is" "a DRA driver name: a DNS subdomain, for example gadget.example.com") -}}
{{- if gt (len $v) 63 -}}
{{- include "sdp.manifest.fail" (list $p (printf "%q is %d characters; a DRA driver name has at most 63" $v (len $v))) -}}
{{- end -}}
{{- else if has $t (list "draAttributes" "draCapacity") -}}
{{- include "sdp.manifest.map" (dict "path" $p "value" $v "key" `^[A-Za-z_][A-Za-z0-9_]{0,31}$` "keyIs" "a DRA attribute name (a C identifier of at most 32 characters)" "type" "string") -}}
{{- else if eq $t "numaNode" -}}
{{- include "sdp.manifest.int" (dict "path" $p "value" $v "min" 0 "max" 1023) -}}
{{- else -}}
{{- fail (printf "chart bug: sdp.manifest.value has no type %q" $t) -}}
{{- end -}}
{{- end -}}
