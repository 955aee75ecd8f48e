"""``python -m dclip``: see :mod:`dclip.cli`."""
import sys

from .cli import main

sys.exit(main())
