"""Named points in long operations where a fault test makes this process die or pause.

``SAFEZONE_FAILPOINTS="grant.identity_created=kill,release.copied=sleep:5"``: at
``reach("grant.identity_created")`` the process kills itself with SIGKILL (what ``kill -9``
or the kernel's OOM killer does: no cleanup, no exit handler), at ``release.copied`` it
sleeps five seconds. Unset, as in every zone, a point is one dictionary lookup. The tests
of ``tests/test_faults.py`` restart the process afterwards and check the state it left.

Test use only: a Kubernetes zone (``SAFEZONE_MODE=kubernetes``) with the variable set
refuses to start (``refuse_in_production``, called where the settings are read), rather
than crash on purpose in production.
"""

from __future__ import annotations

import logging
import os
import signal
import time

log = logging.getLogger(__name__)
VARIABLE = "SAFEZONE_FAILPOINTS"


def _parse(spec: str) -> dict[str, str]:
    points = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, action = item.partition("=")
        if action != "kill" and not action.startswith("sleep:"):
            raise ValueError(f"{VARIABLE}: {item!r} is not name=kill or name=sleep:SECONDS")
        points[name] = action
    return points


POINTS = _parse(os.environ.get(VARIABLE, ""))
if POINTS:
    log.warning("fault injection is on: %s", ", ".join(sorted(POINTS)))


def refuse_in_production(kubernetes: bool) -> None:
    """Raise ``ValueError`` (one line, naming the variable) when fault injection is set in
    a Kubernetes zone; local zones and the tests' processes may use it."""
    if kubernetes and os.environ.get(VARIABLE, "").strip():
        raise ValueError(f"{VARIABLE} is set but SAFEZONE_MODE is kubernetes: fault "
                         f"injection is for tests only; unset {VARIABLE}")


def reach(name: str) -> None:
    """Do what the environment asks at this point (nothing, normally)."""
    action = POINTS.get(name)
    if action is None:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(action.removeprefix("sleep:")))
