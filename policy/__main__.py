"""The policy pack's entry point: ``pulumi preview --policy-pack policy``. Blocks while serving."""

import sys
from pathlib import Path

# Pulumi runs this directory as a script, so make the repository root importable (`policy`).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policy.policies import PACK_NAME, POLICIES  # noqa: E402

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
