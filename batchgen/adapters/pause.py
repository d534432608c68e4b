"""How the whole client slows down after the API says "too many": a 429 (or a 503 with
Retry-After) pauses the shared rate limiter for every request, not only the one refused, and
says so once per pause for the log and the display."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from batchgen.adapters.answers import _text
from batchgen.adapters.limits import SlidingWindowLimiter
from batchgen.core.policy import Backoff, Limit, judge_429, rate_limit_kind, rate_limit_pause

log = logging.getLogger("batchgen.adapters.client")


class ClientPause:
    """The client's pauses on its `limiter`: after a 429, Retry-After when given, else a pause
    that starts at the `pause` backoff's base and doubles while 429s continue. `wall` gives the
    wall-clock time shown to people (the limiter keeps its own monotonic clock)."""

    def __init__(
        self, limiter: SlidingWindowLimiter, pause: Backoff, wall: Callable[[], float]
    ) -> None:
        self._limiter = limiter
        self._pause = pause
        self._wall = wall
        self.consecutive_429 = 0
        self.until_wall: float | None = None
        self.reason = ""
        self._warned_at: float | None = None  # limiter clock time of the last warning
        self._poll_refused_at: float | None = None  # a non-submit request's last 429
        self._unsaid = 0  # pauses logged below WARNING since then

    def __repr__(self) -> str:
        return f"<ClientPause until={self.until_wall} 429s_in_a_row={self.consecutive_429}>"

    def which_limit(self, message: str, *, submit: bool, tasks: int) -> Limit:
        """Which of the API's limits a 429 hit, judged from what this client counted (its own
        requests in the window, the `tasks` it holds, polls refused lately), not from the
        words alone (core/policy.judge_429)."""
        limiter = self._limiter
        now = limiter.clock.now()
        lately = self._poll_refused_at is not None and (
            now - self._poll_refused_at < limiter.period
        )
        if not submit:
            self._poll_refused_at = now
        return judge_429(
            rate_limit_kind(message),
            submit=submit,
            tasks_held=tasks,
            own_in_window=limiter.in_window,
            own_limit=limiter.limit,
            polls_refused_lately=lately,
        )

    def answered(self) -> None:
        """An answer other than a 429: the next 429 starts a new series."""
        self.consecutive_429 = 0

    def for_seconds(self, seconds: float) -> None:
        """Retry-After on a 503: the service says it is unavailable for that long, to all."""
        self._limiter.pause_for(seconds)

    def after_429(self, message: str, retry_after: float | None) -> None:
        """Pause everyone. Only a 429 that comes when no pause is on counts as "continuing":
        the answers to requests already on the wire when the first one came belong to it."""
        limiter = self._limiter
        if limiter.paused_until is None:
            self.consecutive_429 += 1
        seconds = rate_limit_pause(self.consecutive_429, self._pause, retry_after)
        ends = limiter.paused_until
        limiter.pause_for(seconds)
        if ends is not None and (limiter.paused_until or 0.0) < ends + seconds / 2:
            return  # the pause under way already covers this one, or nearly
        why = "Retry-After" if retry_after is not None else "no Retry-After"
        self.reason = f"HTTP 429 ({why}): {_text(message, 120)}"
        self.until_wall = self._wall() + seconds
        # One warning per rate window at most: a run refused for minutes says so once a
        # window (with how many pauses it did not repeat), not once per refused request.
        now = limiter.clock.now()
        quiet = self._warned_at is not None and now - self._warned_at < limiter.period
        if quiet:
            self._unsaid += 1
        more = f"; {self._unsaid} more pause(s) since the last warning" if self._unsaid else ""
        log.log(
            logging.DEBUG if quiet else logging.WARNING,
            "API rate limit: all requests paused for %.3g s, until %s (%s; 429 #%d in a row%s)",
            seconds,
            clock_text(self.until_wall),
            self.reason,
            self.consecutive_429,
            "" if quiet else more,
        )
        if not quiet:
            self._warned_at, self._unsaid = now, 0

    @property
    def current(self) -> tuple[float, str] | None:
        """(wall-clock end, why) while a 429 pause is on; for displays."""
        if self.until_wall is None or self._limiter.paused_until is None:
            return None
        return self.until_wall, self.reason


def clock_text(wall: float) -> str:
    """A local time of day, to the tenth of a second (scaled runs pause for fractions)."""
    return time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int((wall % 1) * 10)}"
