"""``python -m codespace.cli``: the ``codespace`` command (what ssh's ProxyCommand runs)."""

import sys

from codespace.cli import main

sys.exit(main())
