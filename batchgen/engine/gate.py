"""The submit gate: while the API's fate of a submit is in doubt, submits go one at a time.

A submit answered by a gateway's page (502/503/504 HTML, an empty body), cut on the wire or
timed out leaves its job ambiguous: the task may exist. When that happens because the API is
down behind its load balancer, every submit sent meanwhile meets the same page, and a batch
would turn hundreds of jobs ambiguous in seconds (each a decision for a person, each maybe
billed). So one such answer closes the gate:

- submits wait, with the run's backoff, for a sign of life: any answer in the API's own words
  (a status answer to a poll of ours, an error in its envelope), or a status request for a task
  this state file already knows (a GET: it can create nothing);
- then they go single file, one on the wire at a time, until one is answered in the API's own
  words, which opens the gate again.

With a task to ask about, an outage costs no ambiguous job beyond the submits that were on the
wire when it began; without one (the first submits of a batch), at most one per backoff step.
The decisions here take no I/O and no clock: the engine sleeps and probes.
"""

from __future__ import annotations

import asyncio


class SubmitGate:
    """Open, or in doubt since the API last answered in its own words (`alive` counts those
    answers: ApiClient.alive_answers)."""

    __slots__ = ("_alive_at_trip", "doubts", "lock")

    def __init__(self) -> None:
        self.doubts = 0  # doubtful answers since the gate last opened (0: open)
        self._alive_at_trip = 0
        self.lock = asyncio.Lock()  # held by the one submit on the wire while in doubt

    def __repr__(self) -> str:
        state = f"in doubt ({self.doubts})" if self.doubts else "open"
        return f"<SubmitGate {state}>"

    @property
    def in_doubt(self) -> bool:
        return self.doubts > 0

    def doubt(self, alive: int) -> None:
        """A submit's answer left its fate unknown: close (or keep closed) the gate."""
        self.doubts += 1
        self._alive_at_trip = alive

    def answered(self) -> None:
        """A submit was answered in the API's own words (a task id, or an error in its
        envelope): the API is there, submits flow again."""
        self.doubts = 0

    def heard_since_doubt(self, alive: int) -> bool:
        """Whether the API answered in its own words since the last doubtful answer."""
        return alive != self._alive_at_trip
