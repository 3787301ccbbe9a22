"""Work that must not block the screen (saving a case, asking for a sync, switching camera).

One worker thread runs the jobs in order; their results come back to the UI thread through
`poll()`, which the app calls every frame, so callbacks touch UI state on the UI thread only.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


class Tasks:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ui-task")
        self._done: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._pending > 0

    def submit(
        self,
        job: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        with self._lock:
            self._pending += 1

        def finished(future: Future[Any]) -> None:
            error = future.exception()
            if error is None:
                result = future.result()
                self._done.put(lambda: on_done(result) if on_done else None)
            else:
                if on_error is None:
                    log.error("background task failed: %s", error)
                self._done.put(lambda: on_error(error) if on_error else None)  # type: ignore[arg-type]

        self._pool.submit(job).add_done_callback(finished)

    def poll(self) -> None:
        """Run the callbacks of finished jobs (on the calling, i.e. UI, thread)."""
        while True:
            try:
                callback = self._done.get_nowait()
            except queue.Empty:
                return
            with self._lock:
                self._pending -= 1
            callback()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
