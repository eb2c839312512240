"""The entry point Pulumi runs (``main: infra/``): read the config, build, export. No logic."""

import sys
from pathlib import Path

# Pulumi runs this directory as a script, so make the repository root importable (`infra`,
# `dbsplit`); under tests it already is.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pulumi  # noqa: E402

from infra.config import load_config  # noqa: E402
from infra.stack import build  # noqa: E402

for _name, _value in build(load_config()).items():
    pulumi.export(_name, _value)
