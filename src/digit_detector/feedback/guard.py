"""Per-session limits on donations: one copy of a drawing, and at most so many an hour."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .item import FeedbackError, FeedbackItem

MAX_PER_HOUR = 20


@dataclass
class DonationGuard:
    """Lives in one visitor's session; `check` before storing, `record` after success."""

    max_per_hour: int = MAX_PER_HOUR
    clock: Callable[[], float] = time.monotonic
    _sent: set[str] = field(default_factory=set)
    _times: deque[float] = field(default_factory=deque)

    def check(self, item: FeedbackItem) -> None:
        if item.drawing_digest in self._sent:
            raise FeedbackError("this drawing was already sent; thank you! Draw something new to send again")
        now = self.clock()
        while self._times and now - self._times[0] >= 3600:
            self._times.popleft()
        if len(self._times) >= self.max_per_hour:
            wait = 3600 - (now - self._times[0])
            raise FeedbackError(
                f"thank you for {self.max_per_hour} drawings this hour! "
                f"Please send more in {max(1, round(wait / 60))} minutes"
            )

    def record(self, item: FeedbackItem) -> None:
        self._sent.add(item.drawing_digest)
        self._times.append(self.clock())
