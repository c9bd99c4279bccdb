#!/usr/bin/env bash
# A single-node Kubernetes cluster on loopback, for the cluster test and for
# debugging by hand. Needs root, Debian's runc, containernetworking-plugins,
# etcd-server and iptables, and the Kubernetes and containerd 2 binaries
# build.sh builds into _out/bin (see README.md).
#
#   cluster.sh up                 start everything, wait for the Node to be Ready
#   cluster.sh down               stop everything, restore the host (always safe)
#   cluster.sh restart-kubelet    stop the kubelet process and start it again
#   cluster.sh reboot             a node reboot: every process of the node and
#                                 what lives in /run killed and dropped, then
#                                 containerd, the node service (if enabled)
#                                 and the kubelet started as a booting node would
#   cluster.sh start-node-service start the node service installed and enabled
#                                 under $SDP_CLUSTER_ROOT/node-service, as
#                                 systemd would (Type=notify: READY=1 awaited)
#   cluster.sh stop-node-service  stop it
#   cluster.sh import FILE.tar    import an image tarball into containerd (k8s.io)
#   cluster.sh env                print the exports that point kubectl at it
#   cluster.sh status             what runs, where the logs are
#
# State lives in $SDP_CLUSTER_ROOT (default /var/lib/sdp-e2e): certificates,
# kubeconfigs, configs, logs, etcd and containerd data; sockets in
# /run/sdp-e2e. The kubelet uses the real /var/lib/kubelet (the device
# plugin directory is a fixed path). Everything listens on 127.0.0.1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${SDP_CLUSTER_ROOT:-/var/lib/sdp-e2e}
RUN=/run/sdp-e2e
BIN=${SDP_CLUSTER_BIN:-$HERE/_out/bin}
IMAGES=${SDP_CLUSTER_IMAGES:-$HERE/_out/images}
NODE=$(hostname | tr '[:upper:]' '[:lower:]')
POD_CIDR=${SDP_CLUSTER_POD_CIDR:-10.233.233.0/24}
SERVICE_CIDR=10.233.234.0/24
BRIDGE=sdpe2e0
PAUSE_IMAGE=localhost/sdp-e2e/pause:e2e
CONTAINERD_SOCK=$RUN/containerd/containerd.sock
# containerd 2 from _out/bin (build.sh), its shim found on PATH ($BIN first).
CONTAINERD=$BIN/containerd
CTR=$BIN/ctr
APISERVER_PORT=6443
ETCD_CLIENT_PORT=12379 # not 2379: Debian's etcd-server may run its own there
ETCD_PEER_PORT=12380
KUBELET_ROOT=/var/lib/kubelet
# Where the cluster test installs the node service (the installer's
# --bin-dir, --config-dir and --unit-dir under this node's /): a node of
# its own would use /usr/local/bin, /etc/simple-device-plugin and
# /etc/systemd/system.
NODE_SERVICE=$ROOT/node-service
NODE_SERVICE_UNIT=simple-device-plugin.service
# The sysctls the kubelet (and the bridge plugin) rewrite; saved at up,
# restored at down.
SYSCTLS="kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward"
HOSTS_MARK="# sdp-e2e-cluster"

export PATH=$BIN:/usr/local/sbin:/usr/sbin:/sbin:$PATH

log() { printf '%s [cluster] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "ERROR: $*"
	[ "${CMD:-}" = up ] && log "what did start is still running: see $ROOT/logs; $0 down removes it"
	exit 1
}
kc() { kubectl --kubeconfig "$ROOT/admin.kubeconfig" "$@"; }

# ---------------------------------------------------------------- host state

save_host_state() {
	mkdir -p "$ROOT/saved"
	for s in $SYSCTLS; do
		[ -e "/proc/sys/${s//.//}" ] && echo "$s=$(sysctl -n "$s")"
	done >"$ROOT/saved/sysctl.conf"
	iptables-save >"$ROOT/saved/iptables.rules"
	ip6tables-save >"$ROOT/saved/ip6tables.rules"
	ls /run/netns 2>/dev/null | sort >"$ROOT/saved/netns.list" || true
	[ -d /run/netns ] || touch "$ROOT/saved/netns-dir-created"
	# What up creates, down removes: these directories if they did not
	# exist, their contents if they existed empty (the e2e tests leave an
	# empty /var/lib/kubelet behind as their mount point).
	: >"$ROOT/saved/created"
	: >"$ROOT/saved/emptied"
	for p in "$KUBELET_ROOT" /var/lib/cni /var/lib/fpga /var/lib/gadget /dev/sdp-e2e /var/log/containers; do
		if [ ! -e "$p" ]; then
			echo "$p" >>"$ROOT/saved/created"
		elif [ -z "$(ls -A "$p")" ]; then
			echo "$p" >>"$ROOT/saved/emptied"
		elif [ "$p" = "$KUBELET_ROOT" ]; then
			die "$p is not empty: another kubelet's state? Move it away first."
		fi
	done
	# The API server reaches the kubelet by the node's hostname
	# (--kubelet-preferred-address-types=Hostname), on loopback.
	if ! getent hosts "$NODE" | grep -q '^127\.'; then
		echo "127.0.0.1 $NODE $HOSTS_MARK" >>/etc/hosts
	fi
}

restore_host_state() {
	local saved=$ROOT/saved
	[ -d "$saved" ] || return 0
	if [ -f "$saved/sysctl.conf" ]; then
		while IFS= read -r line; do
			[ -n "$line" ] && sysctl -q -w "$line" || true
		done <"$saved/sysctl.conf"
	fi
	restore_iptables iptables "$saved/iptables.rules"
	restore_iptables ip6tables "$saved/ip6tables.rules"
	if grep -q "$HOSTS_MARK" /etc/hosts; then
		# /etc/hosts may be a bind mount: rewrite it in place.
		local kept
		kept=$(grep -v "$HOSTS_MARK" /etc/hosts)
		printf '%s\n' "$kept" >/etc/hosts
	fi
}

# restore_iptables empties every table the kubelet may have written to and
# loads the rules saved at up, so KUBE-* chains go and what was there stays.
restore_iptables() {
	local cmd=$1 rules=$2 t
	[ -f "$rules" ] || return 0
	for t in filter nat mangle raw; do
		$cmd -t "$t" -F 2>/dev/null || true
		$cmd -t "$t" -X 2>/dev/null || true
	done
	for c in INPUT FORWARD OUTPUT; do $cmd -t filter -P "$c" ACCEPT 2>/dev/null || true; done
	"$cmd-restore" <"$rules" || log "WARNING: $cmd-restore failed"
}

# ---------------------------------------------------------------- processes

# start NAME CMD...: runs CMD in its own session, logs to logs/NAME.log.
start() {
	local name=$1
	shift
	mkdir -p "$ROOT/logs" "$ROOT/pids"
	setsid "$@" >>"$ROOT/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$ROOT/pids/$name"
}

# stop NAME: SIGTERM the process started as NAME, SIGKILL after 10 s.
stop() {
	local name=$1 pidfile=$ROOT/pids/$1 pid i t0=$SECONDS
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 100); do alive "$pid" || break; sleep 0.1; done
		if alive "$pid"; then
			log "$name (pid $pid) still running after 10s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$pidfile"
	log "$name stopped ($((SECONDS - t0))s)"
}

# alive PID: the process exists and is not a zombie (the components are
# children of whatever reaps orphans here, which may take its time).
alive() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

running() { [ -f "$ROOT/pids/$1" ] && alive "$(cat "$ROOT/pids/$1")"; }

# wait_for WHAT SECONDS CMD...: retries CMD every half second.
wait_for() {
	local what=$1 secs=$2 i
	shift 2
	for i in $(seq $((secs * 2))); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.5
	done
	die "$what not ready after ${secs}s (logs: $ROOT/logs)"
}

# ---------------------------------------------------------------- certificates

# cert NAME CN O [SANS] [USAGE]: a key and a certificate signed by the CA.
cert() {
	local name=$1 cn=$2 org=$3 sans=${4:-} usage=${5:-clientAuth} subj
	local d=$ROOT/pki
	subj="/CN=$cn"
	[ -n "$org" ] && subj="/O=$org$subj"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$name.key" 2>/dev/null
	openssl req -new -key "$d/$name.key" -subj "$subj" -out "$d/$name.csr" 2>/dev/null
	{
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$usage"
		[ -n "$sans" ] && echo "subjectAltName=$sans"
	} >"$d/$name.ext"
	openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
		-days 2 -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null
}

kubeconfig() {
	local name=$1 user=$2
	cat >"$ROOT/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sdp-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $ROOT/pki/ca.crt
users:
- name: $user
  user:
    client-certificate: $ROOT/pki/$user.crt
    client-key: $ROOT/pki/$user.key
contexts:
- name: sdp-e2e
  context: {cluster: sdp-e2e, user: $user}
current-context: sdp-e2e
EOF
}

make_pki() {
	local d=$ROOT/pki
	mkdir -p "$d"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/ca.key" 2>/dev/null
	openssl req -x509 -new -key "$d/ca.key" -subj "/CN=sdp-e2e-ca" -days 2 -out "$d/ca.crt" 2>/dev/null
	cert apiserver kube-apiserver "" \
		"DNS:localhost,DNS:$NODE,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:${SERVICE_CIDR%.0/24}.1" serverAuth
	cert admin kubernetes-admin system:masters
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
	cert kubelet "system:node:$NODE" system:nodes
	cert controller-manager system:kube-controller-manager ""
	cert scheduler system:kube-scheduler ""
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/sa.key" 2>/dev/null
	openssl pkey -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
	kubeconfig admin admin
	kubeconfig kubelet kubelet
	kubeconfig controller-manager controller-manager
	kubeconfig scheduler scheduler
}

# ---------------------------------------------------------------- components

start_containerd() {
	mkdir -p "$ROOT/containerd" "$RUN/containerd" "$ROOT/cni/net.d" "$ROOT/cni/ipam"
	write_containerd2_config
	# A bridge with host-local addresses; no masquerade: pods talk to the
	# node only (the kubelet's probes), nothing leaves the machine.
	cat >"$ROOT/cni/net.d/10-sdp-e2e.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "sdp-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$ROOT/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]]
      }
    }
  ]
}
EOF
	start containerd "$CONTAINERD" --config "$ROOT/containerd.toml"
	wait_for containerd 30 "$CTR" --address "$CONTAINERD_SOCK" version
}

# containerd 2 (config version 4, the one `containerd config default` of
# 2.4 writes; version 3 also loads, migrated with a warning on every start).
# Every path it would take on the host by default is moved under $ROOT or
# $RUN, except the CDI spec directories.
write_containerd2_config() {
	cat >"$ROOT/containerd.toml" <<EOF
version = 4
root = "$ROOT/containerd"
state = "$RUN/containerd"
# Not the default drop-ins of /etc/containerd/conf.d.
imports = []

[plugins."io.containerd.server.v1.grpc"]
  address = "$CONTAINERD_SOCK"
# Version 4 no longer derives the ttrpc socket from the grpc one: without
# this it would be /run/containerd/containerd.sock.ttrpc.
[plugins."io.containerd.server.v1.ttrpc"]
  address = "$CONTAINERD_SOCK.ttrpc"
# The shims' sockets (default /run/containerd/s).
[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "$RUN/s"
[plugins."io.containerd.internal.v1.opt"]
  path = "$ROOT/containerd-opt"
[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = "$ROOT/image-verifier"
# NRI on, with no plugin, but not on the host's /var/run/nri/nri.sock,
# /opt/nri/plugins, /etc/nri/conf.d.
[plugins."io.containerd.nri.v1.nri"]
  socket_path = "$RUN/nri/nri.sock"
  plugin_path = "$ROOT/nri/plugins"
  plugin_config_path = "$ROOT/nri/conf.d"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    # The kubelet no longer tells the runtime its pause image: a local one.
    sandbox = "$PAUSE_IMAGE"

[plugins."io.containerd.cri.v1.runtime"]
  # Root lacks CAP_SYS_RESOURCE on these machines: without this every
  # sandbox fails with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  # CDI: always on in containerd 2.4 (enable_cdi is gone: an unknown key,
  # ignored with a warning); the spec directories are the defaults,
  # written out because the tests put specs there.
  cdi_spec_dirs = ["/etc/cdi", "/var/run/cdi"]
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      # containerd copies a CRI container's annotations into its OCI spec
      # only when allowed here: let the manifest's (example.com/...) through,
      # so the test sees them where an OCI hook or NRI plugin would.
      container_annotations = ["example.com/*"]
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        # cgroupfs (the machines have cgroup v1); containerd 2 tells the
        # kubelet so through the CRI RuntimeConfig call.
        SystemdCgroup = false
        # runc's state (default /run/containerd/runc).
        Root = "$RUN/runc"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$ROOT/cni/net.d"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
}

import_image() {
	# ctr repeats containerd 2's cgroup v1 deprecation warning (README.md)
	# on every import: keep its other messages.
	"$CTR" --address "$CONTAINERD_SOCK" -n k8s.io images import "$1" 2>&1 >/dev/null |
		{ grep -v 'support for cgroup v1 is deprecated' >&2 || true; }
}

start_etcd() {
	mkdir -p "$ROOT/etcd"
	start etcd etcd --name sdp-e2e --data-dir "$ROOT/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
		--advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "sdp-e2e=http://127.0.0.1:$ETCD_PEER_PORT"
	wait_for etcd 30 curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
}

# Privileged containers allowed, as kubeadm and managed clusters do: the
# node service's installer needs one.
start_apiserver() {
	local d=$ROOT/pki
	start kube-apiserver kube-apiserver \
		--advertise-address=127.0.0.1 --bind-address=127.0.0.1 --secure-port=$APISERVER_PORT \
		--etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
		--endpoint-reconciler-type=none \
		--kubelet-preferred-address-types=Hostname \
		--kubelet-client-certificate="$d/apiserver-kubelet-client.crt" \
		--kubelet-client-key="$d/apiserver-kubelet-client.key" \
		--authorization-mode=Node,RBAC \
		--enable-admission-plugins=NodeRestriction \
		--allow-privileged=true \
		--client-ca-file="$d/ca.crt" \
		--tls-cert-file="$d/apiserver.crt" --tls-private-key-file="$d/apiserver.key" \
		--service-account-issuer=https://kubernetes.default.svc \
		--service-account-key-file="$d/sa.pub" \
		--service-account-signing-key-file="$d/sa.key" \
		--service-cluster-ip-range="$SERVICE_CIDR"
	wait_for kube-apiserver 90 kc get --raw /readyz
}

start_controllers() {
	start kube-controller-manager kube-controller-manager \
		--kubeconfig="$ROOT/controller-manager.kubeconfig" \
		--authentication-kubeconfig="$ROOT/controller-manager.kubeconfig" \
		--authorization-kubeconfig="$ROOT/controller-manager.kubeconfig" \
		--bind-address=127.0.0.1 --leader-elect=false \
		--use-service-account-credentials \
		--service-account-private-key-file="$ROOT/pki/sa.key" \
		--root-ca-file="$ROOT/pki/ca.crt" \
		--cluster-signing-cert-file="$ROOT/pki/ca.crt" --cluster-signing-key-file="$ROOT/pki/ca.key"
	start kube-scheduler kube-scheduler \
		--kubeconfig="$ROOT/scheduler.kubeconfig" \
		--authentication-kubeconfig="$ROOT/scheduler.kubeconfig" \
		--authorization-kubeconfig="$ROOT/scheduler.kubeconfig" \
		--bind-address=127.0.0.1 --leader-elect=false
}

write_kubelet_config() {
	mkdir -p "$ROOT/pod-logs"
	cat >"$ROOT/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $ROOT/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
# The machines have cgroup v1. containerd 2 tells the kubelet its cgroup
# driver (CRI RuntimeConfig: cgroupfs, SystemdCgroup = false); the
# kubelet's own setting says the same.
failCgroupV1: false
cgroupDriver: cgroupfs
# Short periods so the test sees ConfigMap updates and device changes fast.
syncFrequency: 5s
nodeStatusUpdateFrequency: 2s
nodeStatusReportFrequency: 10s
# A test VM is small and busy: do not evict or collect images.
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
failSwapOn: false
podLogsDir: $ROOT/pod-logs
maxPods: 30
EOF
}

start_kubelet() {
	start kubelet kubelet --config="$ROOT/kubelet.yaml" --kubeconfig="$ROOT/kubelet.kubeconfig"
	wait_for kubelet 60 curl -fsS http://127.0.0.1:10248/healthz
}

# ---------------------------------------------------------------- commands

cmd_up() {
	[ "$(id -u)" = 0 ] || die "needs root"
	for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl containerd ctr containerd-shim-runc-v2; do
		[ -x "$BIN/$b" ] || die "$BIN/$b missing: run e2e/cluster/build.sh (or see README.md)"
	done
	for b in runc etcd iptables-save openssl curl ss /usr/lib/cni/bridge /usr/lib/cni/host-local; do
		command -v "$b" >/dev/null || die "$b missing: apt-get install runc containernetworking-plugins etcd-server iptables openssl curl iproute2"
	done
	if [ -d "$ROOT" ] || [ -d "$RUN" ]; then
		log "state of an earlier cluster found: tearing it down first"
		cmd_down
	fi
	local p
	# 8080: the test overlay's plugin pod listens there on the host network.
	for p in $APISERVER_PORT $ETCD_CLIENT_PORT $ETCD_PEER_PORT 10250 10248 10257 10259 8080; do
		if ss -Htln "sport = :$p" | grep -q .; then die "port $p is in use"; fi
	done
	local t0=$SECONDS
	mkdir -p "$ROOT" "$RUN"
	save_host_state
	make_pki
	write_kubelet_config
	start_containerd
	for img in "$IMAGES"/pause.tar "$IMAGES"/podinfo.tar; do
		[ -f "$img" ] || die "$img missing: run e2e/cluster/build.sh"
		import_image "$img"
	done
	log "containerd up, images imported ($((SECONDS - t0))s)"
	start_etcd
	start_apiserver
	log "kube-apiserver ready ($((SECONDS - t0))s)"
	start_controllers
	start_kubelet
	wait_for "node $NODE" 90 kc get node "$NODE"
	wait_for "node $NODE Ready" 120 kc wait --for=condition=Ready "node/$NODE" --timeout=1s
	wait_for "default service account" 60 kc get serviceaccount default
	log "node $NODE Ready in $((SECONDS - t0))s; export KUBECONFIG=$ROOT/admin.kubeconfig"
}

cmd_down() {
	[ "$(id -u)" = 0 ] || die "needs root"
	local t0=$SECONDS
	# The kubelet first, so it stops restarting what the cleanup removes.
	stop kubelet
	stop node-service
	if [ -S "$CONTAINERD_SOCK" ] && running containerd; then
		"$BIN/cricleanup" --endpoint "$CONTAINERD_SOCK" --timeout 60s || log "WARNING: cricleanup failed"
	fi
	stop kube-scheduler
	stop kube-controller-manager
	stop kube-apiserver
	stop etcd
	stop containerd
	kill_leftover_shims
	unmount_under "$KUBELET_ROOT" "$ROOT" "$RUN"
	remove_netns
	ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"
	remove_cgroups
	restore_host_state
	local created="" emptied=""
	[ -f "$ROOT/saved/created" ] && created=$(cat "$ROOT/saved/created")
	[ -f "$ROOT/saved/emptied" ] && emptied=$(cat "$ROOT/saved/emptied")
	for p in $created; do rm -rf --one-file-system "$p"; done
	for p in $emptied; do find "$p" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {} +; done
	rm -rf --one-file-system "$ROOT" "$RUN"
	log "down in $((SECONDS - t0))s"
}

# kill_leftover_shims ends the containerd shims (and so their containers)
# that belong to this cluster's containerd, found by its socket path.
kill_leftover_shims() {
	local d pid cmdline
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		cmdline=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
		[[ $cmdline == *containerd-shim*"$CONTAINERD_SOCK"* ]] || continue
		log "killing leftover process $pid: ${cmdline:0:120}"
		kill -KILL "$pid" 2>/dev/null || true
	done
}

unmount_under() {
	local dir mnt
	for dir in "$@"; do
		# Deepest first.
		for mnt in $(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r); do
			umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || log "WARNING: cannot unmount $mnt"
		done
	done
}

# remove_netns drops the network namespaces that appeared after up (CNI's
# cni-* ones), should the runtime not have released them.
remove_netns() {
	local ns
	[ -d /run/netns ] || return 0
	for ns in $(ls /run/netns); do
		[[ $ns == cni-* ]] || continue
		if [ -f "$ROOT/saved/netns.list" ] && grep -qx "$ns" "$ROOT/saved/netns.list"; then continue; fi
		umount "/run/netns/$ns" 2>/dev/null || true
		rm -f "/run/netns/$ns"
	done
	[ -f "$ROOT/saved/netns-dir-created" ] && rmdir /run/netns 2>/dev/null
	return 0
}

# remove_cgroups removes the kubelet's kubepods hierarchy in every cgroup v1
# controller (and v2), deepest first. They are empty once the pods are gone.
remove_cgroups() {
	local top
	for top in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/kubepods.slice; do
		[ -d "$top" ] || continue
		find "$top" -depth -type d -exec rmdir {} + 2>/dev/null || true
		[ -d "$top" ] && log "WARNING: cgroup $top not removed"
	done
}

cmd_restart_kubelet() {
	running kubelet || die "kubelet is not running"
	stop kubelet
	start_kubelet
}

# node_service_command prints the enabled node service's ExecStart= (its
# continuation lines joined), or fails if it is not installed and enabled
# (pulled in by kubelet.service).
node_service_command() {
	local unit=$NODE_SERVICE/systemd/$NODE_SERVICE_UNIT
	[ -L "$NODE_SERVICE/systemd/kubelet.service.wants/$NODE_SERVICE_UNIT" ] && [ -f "$unit" ] || return 1
	awk '/^ExecStart=/ {on = 1; sub(/^ExecStart=/, "")}
		on {line = $0; more = sub(/\\$/, "", line); printf "%s ", line; if (!more) exit}' "$unit"
}

# node_service_env prints the unit's EnvironmentFile= lines (the
# installer's NODE_NAME=...), for env(1).
node_service_env() {
	local f
	f=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$NODE_SERVICE/systemd/$NODE_SERVICE_UNIT" | head -n 1)
	[ -n "$f" ] && [ -f "$f" ] && grep -E '^[A-Z_]+=' "$f" || true
}

cmd_start_node_service() {
	local exec_start
	exec_start=$(node_service_command) || die "no node service installed and enabled under $NODE_SERVICE/systemd"
	running node-service && die "the node service is running already"
	mkdir -p "$ROOT/logs" "$ROOT/pids"
	# shellcheck disable=SC2046,SC2086 # ExecStart= and the env file are word lists
	# systemd's TimeoutStartSec=, as the unit sets it (default 90s).
	local timeout
	timeout=$(sed -n 's/^TimeoutStartSec=//p' "$NODE_SERVICE/systemd/$NODE_SERVICE_UNIT" | tail -n 1)
	"$BIN/notifystart" --pidfile "$ROOT/pids/node-service" --log "$ROOT/logs/node-service.log" --timeout "${timeout:-90s}" -- \
		env $(node_service_env) $exec_start || log "WARNING: the node service did not get ready; the kubelet starts anyway (Wants=, not Requires=)"
}

cmd_stop_node_service() { stop node-service; }

# cmd_reboot: what a power cut and a boot do to this node. Every process
# of the node is killed at once (the kubelet, the node service, containerd,
# every shim and container); what lives in /run and in memory is gone:
# containerd's and runc's state, mounts of the pods' volumes and root
# filesystems, the pods' network namespaces and cgroups, the CDI specs in
# /var/run/cdi. What is on disk stays: /var/lib/kubelet (its checkpoints),
# containerd's images and metadata. Then the boot: containerd, the node
# service if enabled (before the kubelet, waited for), the kubelet.
cmd_reboot() {
	running kubelet || die "kubelet is not running"
	local t0=$SECONDS f pid
	log "reboot: every process of the node killed"
	for f in kubelet node-service; do
		[ -f "$ROOT/pids/$f" ] && kill -KILL "$(cat "$ROOT/pids/$f")" 2>/dev/null
	done
	for f in $(find /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods -name cgroup.procs 2>/dev/null); do
		for pid in $(cat "$f" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
	done
	kill_leftover_shims
	[ -f "$ROOT/pids/containerd" ] && kill -KILL "$(cat "$ROOT/pids/containerd")" 2>/dev/null
	for f in kubelet node-service containerd; do
		[ -f "$ROOT/pids/$f" ] || continue
		pid=$(cat "$ROOT/pids/$f")
		for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
		rm -f "$ROOT/pids/$f"
	done
	# Containers' processes go with their cgroups' last task.
	for f in $(find /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods -name cgroup.procs 2>/dev/null); do
		for _ in $(seq 100); do [ -z "$(cat "$f" 2>/dev/null)" ] && break; sleep 0.1; done
	done
	unmount_under "$KUBELET_ROOT/pods" "$RUN"
	rm -rf --one-file-system "$RUN"
	remove_netns
	remove_cgroups
	rm -f /var/run/cdi/simple-device-plugin-*
	log "reboot: down in $((SECONDS - t0))s; booting"
	mkdir -p "$RUN"
	start_containerd
	if node_service_command >/dev/null; then
		cmd_start_node_service
	fi
	start_kubelet
	log "reboot: kubelet healthy $((SECONDS - t0))s after the power cut"
}

cmd_env() {
	echo "export KUBECONFIG=$ROOT/admin.kubeconfig"
	echo "export PATH=$BIN:\$PATH"
	echo "export CONTAINERD_ADDRESS=$CONTAINERD_SOCK CONTAINERD_NAMESPACE=k8s.io"
}

cmd_status() {
	local n pid rss total=0
	for n in containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet node-service; do
		[ "$n" = node-service ] && [ ! -f "$ROOT/pids/$n" ] && continue
		if running "$n"; then
			pid=$(cat "$ROOT/pids/$n")
			rss=$(awk '/^VmRSS/ {print int($2/1024)}' "/proc/$pid/status")
			total=$((total + rss))
			printf '%-24s running, pid %-7s %5s MiB  log %s\n' "$n" "$pid" "$rss" "$ROOT/logs/$n.log"
		else
			echo "$n not running"
		fi
	done
	echo "total resident memory of the components: $total MiB"
}

CMD=${1:-}
case "$CMD" in
up) cmd_up ;;
down) cmd_down ;;
restart-kubelet) cmd_restart_kubelet ;;
reboot) cmd_reboot ;;
start-node-service) cmd_start_node_service ;;
stop-node-service) cmd_stop_node_service ;;
import) [ -n "${2:-}" ] || die "usage: cluster.sh import FILE.tar"; import_image "$2" ;;
env) cmd_env ;;
status) cmd_status ;;
*)
	awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"
	exit 2
	;;
esac
