"""Recovery watchdog: a worker whose table recovery stopped moving exits, to be restarted.

After a rebalance faust reads the table changelogs (``screening``, ``delivered``) before any
agent runs again. Once, in a 3-broker failover test, the surviving worker's recovery received
no changelog record at all for minutes after the rebalance, while the broker held them, and the
worker sat healthy-looking and silent: no block screened, no alert delivered. Waiting cannot
help a recovery that makes no progress; a fresh process can (its consumer starts clean, and
nothing acknowledged is lost by an exit: every agent settles its writes before an offset can be
committed). So a service checks every 5 s the changes recovery still has to read against the
figure of the check before; when it has not moved for ``worker.recovery_stall_seconds`` the
worker logs what it was waiting for and exits with :data:`EXIT_RECOVERY_STALLED`.
``chainwatch up``, the container restart policy and the Kubernetes StatefulSet start it again.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, cast

import faust
import mode

log = logging.getLogger(__name__)

EXIT_RECOVERY_STALLED = 75
"""Exit code of a worker whose recovery stalled (EX_TEMPFAIL: try again)."""
CHECK_INTERVAL_SECONDS = 5.0


class RecoveryWatchdog:
    """Watches faust's table recovery of one app; exits the process when it stops moving."""

    def __init__(self, app: faust.App, stall_seconds: float,
                 exit_process: Callable[[int], Any] = os._exit,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.stall_seconds = stall_seconds
        self._exit = exit_process
        self._clock = clock
        self._remaining: int | None = None
        self._since = 0.0

    def check(self) -> bool:
        """One tick: True (after exiting, when ``exit_process`` returns) if recovery stalled."""
        now = self._clock()
        in_recovery = bool(self.app.in_recovery)  # set by faust before the recovery exists
        recovery = cast(Any, self.app.tables).recovery if in_recovery else None
        remaining = recovery.active_remaining_total() if recovery is not None else 0
        if recovery is None or remaining <= 0:
            self._remaining = None
            return False
        if remaining != self._remaining:
            self._remaining, self._since = remaining, now
            return False
        stalled_for = now - self._since
        if stalled_for < self.stall_seconds:
            return False
        behind = {f"{tp.topic}[{tp.partition}]": count
                  for tp, count in recovery.active_remaining().items() if count > 0}
        log.critical("table recovery has not moved for %.0f s (%d change(s) still to read: %s); "
                     "exiting with code %d so that the worker is started again", stalled_for,
                     remaining, behind, EXIT_RECOVERY_STALLED)
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        self._exit(EXIT_RECOVERY_STALLED)
        return True


class RecoveryWatchdogService(mode.Service):
    """Runs a :class:`RecoveryWatchdog` every few seconds, from the app's start on.

    A service the app depends on, not a faust timer: faust starts its timers only after the
    first recovery, and that one must be watched too.
    """

    def __init__(self, watchdog: RecoveryWatchdog, **kwargs: Any) -> None:
        self.watchdog = watchdog
        super().__init__(**kwargs)

    @mode.Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            await self.sleep(CHECK_INTERVAL_SECONDS)
            self.watchdog.check()


def register(app: faust.App, stall_seconds: float) -> RecoveryWatchdog:
    """Make ``app`` depend on a service that runs a :class:`RecoveryWatchdog`."""
    watchdog = RecoveryWatchdog(app, stall_seconds)
    app.add_dependency(RecoveryWatchdogService(watchdog))
    return watchdog
