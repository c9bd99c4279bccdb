#!/usr/bin/env bash
# Builds what the cluster test runs, into e2e/cluster/_out:
#   bin/kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl
#                        (k8s.io/kubernetes from the Go module proxy, kube/go.mod)
#   bin/helm             (helm.sh/helm/v3, helm/go.mod)
#   bin/containerd containerd-shim-runc-v2 ctr
#                        (github.com/containerd/containerd/v2, containerd/go.mod)
#   bin/mkimage podinfo pause cricleanup   (this module)
#   images/pause.tar podinfo.tar           (docker-archive tarballs, by mkimage)
# The Kubernetes, helm and containerd binaries are rebuilt only when their
# go.mod, go.sum, build flags or the Go version change (a stamp file): a warm
# run takes seconds.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$HERE/_out
GO=${GO:-go}
mkdir -p "$OUT/bin" "$OUT/images"
export CGO_ENABLED=0

log() { printf '%s [build] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# build_pinned DIR STAMP LDFLAGS PKG...: go build PKGs of module DIR unless
# the stamp says they were built from the same go.mod, go.sum, flags and Go.
# TAGS=... before it: build tags.
build_pinned() {
	local dir=$1 name=$2 stamp=$OUT/bin/.$2.stamp ldflags="-s -w $3" tags=${TAGS:-} sum p missing=0
	shift 3
	# (The tags join the stamp only when set, so the stamps of builds
	# without tags stay what they were.)
	sum=$(cat "$dir/go.mod" "$dir/go.sum" <("$GO" version) <(echo "$ldflags") <([ -z "$tags" ] || echo "tags $tags") | sha256sum | cut -c1-16)
	for p in "$@"; do [ -x "$OUT/bin/$(basename "$p")" ] || missing=1; done
	if [ "$missing" = 0 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
		log "$name: up to date"
		return
	fi
	local t0=$SECONDS
	(cd "$dir" && "$GO" build -trimpath -tags="$tags" -ldflags="$ldflags" -o "$OUT/bin/" "$@")
	echo "$sum" >"$stamp"
	log "$name: built in $((SECONDS - t0))s"
}

# The Kubernetes version, stamped into the binaries as its release build
# does (the node then reports it, and kubectl version works).
KUBE_VERSION=$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$HERE/kube/go.mod")
KUBE_MINOR=$(echo "$KUBE_VERSION" | cut -d. -f2)
KUBE_LDFLAGS=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	KUBE_LDFLAGS+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR -X $pkg.gitTreeState=clean"
done

t0=$SECONDS
build_pinned "$HERE/kube" kube "$KUBE_LDFLAGS" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl
build_pinned "$HERE/helm" helm "" helm.sh/helm/v3/cmd/helm

# containerd 2 as its Makefile builds it (version stamped, urfave_cli_no_docs;
# the shim also no_grpc), static (CGO_ENABLED=0), without the btrfs,
# devmapper and zfs snapshotters (btrfs needs cgo; none is used here).
CTRD_PKG=github.com/containerd/containerd/v2
CTRD_VERSION=$(awk -v m="$CTRD_PKG" '$1 == m {print $2}' "$HERE/containerd/go.mod")
CTRD_LDFLAGS="-X $CTRD_PKG/version.Version=$CTRD_VERSION"
CTRD_TAGS="urfave_cli_no_docs no_btrfs no_devmapper no_zfs"
TAGS=$CTRD_TAGS build_pinned "$HERE/containerd" containerd "$CTRD_LDFLAGS" \
	$CTRD_PKG/cmd/containerd $CTRD_PKG/cmd/ctr
TAGS="$CTRD_TAGS no_grpc" build_pinned "$HERE/containerd" containerd-shim "$CTRD_LDFLAGS" \
	$CTRD_PKG/cmd/containerd-shim-runc-v2

(cd "$HERE" && "$GO" build -trimpath -ldflags='-s -w' -o "$OUT/bin/" ./cmd/...)
"$OUT/bin/mkimage" --tag localhost/sdp-e2e/pause:e2e --out "$OUT/images/pause.tar" \
	--add "$OUT/bin/pause=/pause" --entrypoint /pause --user 65535:65535 >/dev/null
"$OUT/bin/mkimage" --tag localhost/sdp-e2e/podinfo:e2e --out "$OUT/images/podinfo.tar" \
	--add "$OUT/bin/podinfo=/podinfo" --entrypoint /podinfo >/dev/null
log "tools and images built; all in $((SECONDS - t0))s"
