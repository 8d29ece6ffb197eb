"""``python -m adchain_assets.cli``: the ``adchain`` command."""

import sys

from adchain_assets.cli.main import main

sys.exit(main())
