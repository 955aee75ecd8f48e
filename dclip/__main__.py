"""``python -m dclip``: see :mod:`dclip.cli`."""
import os
import sys

try:
    from .cli import main

    if "TORCHELASTIC_RUN_ID" in os.environ:  # under torchrun: a rank's uncaught error goes into torchrun's summary
        from torch.distributed.elastic.multiprocessing.errors import record

        main = record(main)
    code = main()
except KeyboardInterrupt:  # what the commands do not catch themselves: Ctrl-C while Python is still importing
    print("dclip: interrupted", file=sys.stderr)
    code = 130
sys.exit(code)
