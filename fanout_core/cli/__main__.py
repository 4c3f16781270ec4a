"""``python -m fanout_core.cli``: the ``fanout`` command."""

import sys

from fanout_core.cli import main

sys.exit(main())
