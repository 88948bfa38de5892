"""Model calls made concurrently, ahead of the tests that assert on them.

Each (cell, trial) is called at most once per process; a bounded thread pool keeps
at most ``max_concurrency`` calls in flight. Tests then read the answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from workshop.model import Completion, ProviderError

CallKey = tuple[str, str, int]
"""(prompt version, case id, trial)"""


@dataclass
class CallStats:
    """Calls submitted, finished, answered from recordings, and failed."""

    submitted: int = 0
    done: int = 0
    replayed: int = 0
    failed: int = 0

    def line(self) -> str:
        """A progress line."""
        return f"model calls: {self.done}/{self.submitted} done ({self.replayed} from recordings, {self.failed} failed)"


class Prefetcher:
    """Runs calls on a bounded pool; `completions` waits for one cell's trials."""

    def __init__(self, call: Callable[[CallKey], Completion], max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self._call = call
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="workshop-call")
        self._futures: dict[CallKey, Future[Completion]] = {}
        self._lock = threading.Lock()
        self._all_done = threading.Condition(self._lock)
        self.stats = CallStats()

    def submit(self, keys: Iterable[CallKey]) -> int:
        """Start the calls not started yet; returns how many were started."""
        started: list[Future[Completion]] = []
        with self._lock:
            for key in keys:
                if key not in self._futures:
                    self._futures[key] = self._pool.submit(self._call, key)
                    started.append(self._futures[key])
            self.stats.submitted += len(started)
        # outside the lock: a call that is already done runs its callback right here, and it takes the lock
        for future in started:
            future.add_done_callback(self._count)
        return len(started)

    def _count(self, future: Future[Completion]) -> None:
        with self._all_done:
            self.stats.done += 1
            if future.cancelled() or future.exception() is not None:  # cancelled by `close`: no exception to ask
                self.stats.failed += 1
            elif future.result().replayed:
                self.stats.replayed += 1
            self._all_done.notify_all()

    def wait_all(self, progress: Callable[[CallStats], None] | None = None, every_s: float = 0.2) -> CallStats:
        """Wait until every submitted call is done, reporting progress now and then."""
        with self._all_done:
            while self.stats.done < self.stats.submitted:
                if progress is not None:
                    progress(self.stats)
                self._all_done.wait(timeout=every_s)
        if progress is not None:
            progress(self.stats)
        return self.stats

    def completions(self, keys: Iterable[CallKey]) -> list[Completion]:
        """The answers of ``keys`` (submitted if needed), in order; the first failure raises `ProviderError`."""
        keys = list(keys)
        self.submit(keys)
        answers = []
        for key in keys:
            with self._lock:
                future = self._futures[key]
            try:
                answers.append(future.result())
            except ProviderError:
                raise
            except Exception as exc:  # a bug or an unexpected failure in a call: still not a prompt failure
                raise ProviderError(f"{type(exc).__name__}: {exc}") from exc
        return answers

    def close(self) -> None:
        """Stop: calls not started yet are cancelled."""
        self._pool.shutdown(wait=False, cancel_futures=True)
