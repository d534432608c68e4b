"""What a caller of a run may attach to it while it runs: a progress display, signal
handlers, a metrics counter, a test's probe. Passed to the pipeline (runner.execute) beside
the settings, never stored in them: settings are values a run records and replays, hooks are
this process's objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchgen.callbacks import CallbackReceiver
    from batchgen.engine import Engine


@dataclass(frozen=True)
class RunHooks:
    """`on_engine` is called with the engine before it runs; `on_receiver` with the callback
    receiver once it listens (callback mode)."""

    on_engine: Callable[[Engine], None] | None = None
    on_receiver: Callable[[CallbackReceiver], None] | None = None
    on_result: Callable[[dict[str, Any]], None] | None = None
    """Called with each job's report record (`batchgen report`'s fields) as it finishes."""

    def with_engine(self, hook: Callable[[Engine], None]) -> RunHooks:
        """These hooks, and `hook` on the engine after any already here."""
        first = self.on_engine

        def both(engine: Engine) -> None:
            if first is not None:
                first(engine)
            hook(engine)

        return RunHooks(on_engine=both, on_receiver=self.on_receiver, on_result=self.on_result)

    def engine(self, engine: Engine) -> None:
        if self.on_engine is not None:
            self.on_engine(engine)

    def receiver(self, receiver: CallbackReceiver) -> None:
        if self.on_receiver is not None:
            self.on_receiver(receiver)
