#!/usr/bin/env bash
# The whole test suite from a fresh machine: set-up, lint, type check, unit and end-to-end tests
# (the e2e tests start their own control plane and Prometheus; set KUBECONFIG to use a cluster
# you already have). Extra arguments go to pytest, e.g. `hack/test.sh tests/unit -k probes`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

"$HACK_DIR/setup.sh"
log "ruff"; .venv/bin/ruff check operator tests hack
log "mypy"; .venv/bin/mypy
log "import-linter"; .venv/bin/lint-imports
log "operator image"; "$HACK_DIR/image.sh" >/dev/null  # cold: minutes (cached); tests/e2e/test_image.py runs it
log "pytest"; exec .venv/bin/pytest -ra --durations=15 "$@"
