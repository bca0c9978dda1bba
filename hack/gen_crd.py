#!/usr/bin/env python3
"""Regenerate crds/ and docs/{policy-reference,checks}.md from the model: `hack/gen_crd.py [--check]`."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))

from readiness_operator.generate import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["--root", str(ROOT), *sys.argv[1:]]))
