#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine, and is fast when it is all there:
# Debian packages (prometheus, openssl, curl; podman, runc and mmdebstrap for the operator image
# that hack/image.sh builds), a Python venv with the project and its dev tools,
# and the Go-built control plane + helm (and Sloth, the SLO oracle of the tests) in ~/.cache/readiness-operator.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES=(prometheus openssl curl ca-certificates)
# Debian's chromium: the readiness page's browser e2e (tests/e2e/test_readiness_views.py); ~80 MB
# download, ~350 MB installed.
APT_PACKAGES+=(chromium)
# podman, runc, mmdebstrap: the operator image built and run by tests/e2e/test_image.py (hack/image.sh).
APT_PACKAGES+=(podman runc mmdebstrap)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's package may start a Prometheus of its own where an init system runs; ours picks its own port.

VENV=$REPO_ROOT/.venv
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
stamp=$VENV/.installed-$(inputs_hash "$REPO_ROOT/pyproject.toml")
if [[ ! -f $stamp ]]; then
  log "installing Python packages into .venv"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e "$REPO_ROOT[dev]"
  rm -f "$VENV"/.installed-*; touch "$stamp"
fi

"$HACK_DIR/build.sh" all
