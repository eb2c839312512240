"""``python -m dbsplit``: the same as the ``dbsplit`` command."""

import sys

from dbsplit.cli import main

sys.exit(main())
