"""What the interpreter pool runs in its workers: picklable by reference, or plain source.

Importing this module imports `experiments.workloads`, so a worker that has imported it
(in the pool's initializer, `INIT`) runs its first task without paying that import.
"""

from __future__ import annotations

import os

from experiments import workloads  # noqa: F401  (imported for the workers: see above)

# The pool's initializer runs this with exec(INIT.format(...), {}) in each new worker
# interpreter (exec pickles by reference, and our package is not on a new interpreter's
# sys.path yet). `C` says the interpreter exists, before its imports: the pool's
# create = "serial" waits for it to start the next worker. `paths`: the folders of a user
# workload's code (experiments/userwork.py); `prepare` imports its module, so that import
# is start-up, not work.
INIT = """\
import os
os.write({events_fd}, b"C")
import sys
if {root!r} not in sys.path:
    sys.path.insert(0, {root!r})
import experiments.pool_tasks
for path in {paths!r}:
    import experiments.userwork
    experiments.userwork.activate(path)
experiments.workloads.prepare({workload!r})
"""


def init_source(events_fd: int, root: str, workload: str) -> str:
    """INIT for one pool: a user workload's code folders come from the main interpreter."""
    paths: list[str] = []
    if ":" in workload:
        from experiments import userwork

        paths = userwork.search_path()
    return INIT.format(events_fd=events_fd, root=root, paths=paths, workload=workload)


def ready_then_wait(events_fd: int, go_fd: int) -> None:
    """Occupy one pool worker: say ready, then block until the main side says go."""
    os.write(events_fd, b"R")
    os.read(go_fd, 1)
