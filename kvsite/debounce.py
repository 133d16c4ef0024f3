"""Run an action once, soon after one or more pokes: per-commit work off the request path."""

import logging
import threading
import time

from django.db import close_old_connections

log = logging.getLogger(__name__)


class Debounce:
    """Calls `action` once shortly after one or more `poke()`s, from a daemon thread."""

    def __init__(self, action, delay_s: float) -> None:
        self._action, self._delay_s = action, delay_s
        self._event = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        if not self._event.is_set():  # a poke while one is pending wakes nobody
            self._event.set()
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            self._event.wait()
            if self._delay_s:
                # gather the pokes of the next few milliseconds: they only find the event set
                time.sleep(self._delay_s)
            self._event.clear()  # before the action: a poke from now on runs it again
            try:
                self._action()
            except Exception:  # e.g. the broker is down: the callers' periodic sweeps catch up
                log.warning("%s failed", getattr(self._action, "__name__", "action"), exc_info=True)
            finally:
                # This thread lives on without requests: drop a database connection the server
                # closed (a restart), or the thread's next action would fail on it forever.
                close_old_connections()
