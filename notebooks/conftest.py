"""nbval on the stored notebooks (make test-notebooks).

The stored notebooks carry no execution counts: nbstripout, the git filter ``make setup`` installs,
strips them. nbval treats a cell without a count as never run and rejects its stored outputs, so the
checked cells (the only ones with outputs) get a count back before nbval compares them.

A cell that takes more than :data:`WARN_FRACTION` of nbval's per-cell timeout (``--nbval-cell-timeout``) gets a
line saying how long it took, so that a machine slower than the one the notebooks were timed on shows what is
close to the limit before it is over it.
"""
import time

import pytest
from nbval.plugin import IPyNbCell

#: A cell past this share of the timeout is reported.
WARN_FRACTION = 0.5


def pytest_collection_modifyitems(items):
    for item in items:
        if isinstance(item, IPyNbCell) and item.cell.outputs and item.cell.execution_count is None:
            item.cell.execution_count = 1  # nbval only asks whether the reference cell was run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    start = time.perf_counter()
    yield
    limit = item.config.getoption("nbval_cell_timeout", None) if isinstance(item, IPyNbCell) else None
    seconds = time.perf_counter() - start
    if limit and seconds > WARN_FRACTION * float(limit):
        reporter = item.config.pluginmanager.get_plugin("terminalreporter")
        line = (f"{item.nodeid}: {seconds:.0f} s, {seconds / float(limit):.0%} of nbval's {float(limit):.0f} s cell "
                f"timeout: on a machine {float(limit) / seconds:.1f}x slower it would time out")
        if reporter is not None:
            reporter.write_line(line, yellow=True)
