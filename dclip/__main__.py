"""``python -m dclip``: see :mod:`dclip.cli`."""
import os
import sys

from .cli import main

if "TORCHELASTIC_RUN_ID" in os.environ:  # under torchrun: a rank's uncaught error goes into torchrun's summary
    from torch.distributed.elastic.multiprocessing.errors import record

    main = record(main)

sys.exit(main())
