"""The worker loop as it runs inside a sub-interpreter (or a pool interpreter).

Control goes over OS pipes, which every interpreter in the process can block
on without polling: one byte `R` when ready, `D` after each result put on the
queue; the main side writes `G` (go) or `X` (abort) to the go pipe, `P` to a
worker's own pipe after putting a payload on its queue, and a byte to the
release pipe once it has taken every result. Workers wait for that release
because queue items belong to the interpreter that put them: destroying it
first would unbind (3.13+) or close (3.12) results still in flight.
Data (payloads and results) goes through the version's own mechanism via
`_put` / `_get`.
"""

from __future__ import annotations

import os

from experiments import wire, workloads

# What every worker interpreter imports is part of its measured start-up, so nothing
# here pulls in typing or json (and re): TYPE_CHECKING is not typing's (see
# experiments/catalog.py) and experiments.wire decodes with json's own C scanner.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def serve(
    workload: str,
    params_json: str,
    count: int,
    fds: dict[str, int],
    put: Callable[[Any], None],
    get: Callable[[], Any],
    paths: list[str] | None = None,
) -> None:
    params = wire.loads(params_json)
    if paths:  # a user workload: its code's folder, as the main interpreter has it
        from experiments import userwork

        for path in paths:
            userwork.activate(path)
    workloads.prepare(workload)  # its import is start-up, before ready
    os.write(fds["events"], b"R")
    if os.read(fds["go"], 1) != b"G":
        return
    for _ in range(count):
        payload = None
        if workloads.needs_payload(workload):
            os.read(fds["inbox"], 1)  # a payload is on the queue now
            payload = get()
        put(workloads.encode_result(workload, workloads.run_task(workload, params, payload)))
        os.write(fds["events"], b"D")
    os.read(fds["release"], 1)


def report_error(fds: dict[str, int], text: str) -> None:
    """One line on the error pipe (short enough to be written atomically), then `E`."""
    line = text.replace("\n", " ")[:1000].encode("utf-8", "replace") + b"\n"
    os.write(fds["errors"], line)
    os.write(fds["events"], b"E")


SOURCE = """\
try:
    import sys
    if {root!r} not in sys.path:
        sys.path.insert(0, {root!r})
{prelude}
    from experiments.subinterp import worker as _worker
    _worker.serve({workload!r}, {params!r}, {count!r}, {fds!r}, _put, _get, {paths!r})
except BaseException as _exc:
    import os as _os
    _text = f"{{type(_exc).__name__}}: {{_exc}}"
    _os.write({fds[errors]!r}, _text.replace("\\n", " ")[:1000].encode("utf-8", "replace") + b"\\n")
    _os.write({fds[events]!r}, b"E")
"""


def source(
    root: str, prelude: str, workload: str, params: dict[str, Any], count: int, fds: dict[str, int]
) -> str:
    """The script a worker interpreter runs; it reports even an import failure."""
    indented = "\n".join("    " + line for line in prelude.splitlines())
    paths: list[str] = []
    if ":" in workload:  # a user workload (experiments/userwork.py); imported only then
        from experiments import userwork

        paths = userwork.search_path()
    return SOURCE.format(
        paths=paths,
        root=root,
        prelude=indented,
        workload=workload,
        params=wire.dumps(params),
        count=count,
        fds=fds,
    )
