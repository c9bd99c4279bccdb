#!/usr/bin/env bash
# make e2e-cluster: build, check deploy/ (helm lint/template, kustomize),
# bring a single-node cluster up on loopback, run the cluster test against
# it, and tear the cluster down whatever happened. Each phase prints its
# duration. Needs root and the Debian packages README.md lists.
#
#   SDP_CLUSTER_KEEP=1   leave the cluster up after the test (to debug;
#                        e2e/cluster/cluster.sh down when done)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
GO=${GO:-go}
export SDP_CLUSTER_BIN=$HERE/_out/bin
ROOT=${SDP_CLUSTER_ROOT:-/var/lib/sdp-e2e}

SUMMARY=()
phase() {
	local name=$1 t0=$SECONDS rc=0
	shift
	printf '\n===== %s\n' "$name"
	"$@" || rc=$?
	SUMMARY+=("$(printf '%-28s %4ss  %s' "$name" $((SECONDS - t0)) "$([ $rc = 0 ] && echo ok || echo "FAILED ($rc)")")")
	return $rc
}

summary() {
	printf '\n===== e2e-cluster summary\n'
	printf '%s\n' "${SUMMARY[@]}"
}

component_logs() {
	local f
	for f in kubelet containerd kube-apiserver kube-scheduler kube-controller-manager; do
		[ -f "$ROOT/logs/$f.log" ] || continue
		printf '\n----- last lines of %s.log\n' "$f"
		grep -Ev '^I[0-9]|level=info' "$ROOT/logs/$f.log" | tail -n 25 || true
	done
}

# failed_step prints the end of the failed step's own output again, after
# the diagnostics and component logs that pushed it far up.
failed_step() {
	local log=${TEST_LOG:-}
	[ -n "$log" ] && [ -f "$log" ] || return 0
	local step
	step=$(sed -n 's/^=== step \(.*\): FAILED.*/\1/p' "$log" | head -n 1)
	[ -n "$step" ] || return 0
	printf '\n===== step %s failed; its last lines\n' "$step"
	sed -n "/^=== RUN   TestCluster\/$step\$/,/^=== step $step: FAILED/p" "$log" | tail -n 40
}

CLUSTER_STARTED=""
teardown() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$CLUSTER_STARTED" ]; then
		if [ "$rc" != 0 ]; then component_logs; fi
		printf '\n===== cluster status\n'
		"$HERE/cluster.sh" status || true
		if [ "$rc" != 0 ]; then failed_step; fi
		if [ "${SDP_CLUSTER_KEEP:-}" = 1 ]; then
			echo "SDP_CLUSTER_KEEP=1: the cluster stays up; $HERE/cluster.sh env; $HERE/cluster.sh down"
		else
			phase "cluster down" "$HERE/cluster.sh" down || rc=1
		fi
	fi
	summary
	exit "$rc"
}

[ "$(id -u)" = 0 ] || { echo "make e2e-cluster needs root (it runs a kubelet)" >&2; exit 1; }
trap teardown EXIT
trap 'exit 130' INT TERM

phase "build plugin" make -C "$REPO" build
phase "build cluster binaries" "$HERE/build.sh"
phase "deploy checks (helm, kustomize, image)" bash -c "set -o pipefail; cd '$HERE' && '$GO' test -count=1 -run 'TestDeploy|TestHelm|TestChart|TestImage' -v . ./internal/... 2>&1 | grep -Ev '^=== (RUN|PAUSE|CONT)'"
phase "compile cluster test" bash -c "cd '$HERE' && '$GO' test -c -o _out/bin/cluster.test ."

CLUSTER_STARTED=1
phase "cluster up" "$HERE/cluster.sh" up
export SDP_CLUSTER_KUBECONFIG=$ROOT/admin.kubeconfig
TEST_LOG=$ROOT/logs/cluster-test.log
phase "cluster test (22 steps)" bash -c "set -o pipefail; cd '$HERE' && ./_out/bin/cluster.test -test.run '^TestCluster\$' -test.v -test.timeout 25m 2>&1 | tee '$TEST_LOG'"
