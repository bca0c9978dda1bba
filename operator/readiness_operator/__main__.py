"""`python -m readiness_operator` is the `readiness-operator` command."""

import sys

from readiness_operator.cli import main

sys.exit(main())
