"""The engine: a run of one state file, composed of parts around a shared run context
(run.py: the loop; context.py: what the parts share; submit.py, track.py, downloads.py: the
parts; outcome.py: how a run ends)."""

from __future__ import annotations

from batchgen.engine.config import (
    EXIT_ACCOUNT,
    EXIT_BUDGET,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_WORK_LEFT,
    EngineConfig,
    EngineStats,
    RunOutcome,
    describe,
)
from batchgen.engine.run import Engine
from batchgen.settings import RESULT_LIFETIME_S

__all__ = [
    "EXIT_ACCOUNT",
    "EXIT_BUDGET",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "EXIT_WORK_LEFT",
    "RESULT_LIFETIME_S",
    "Engine",
    "EngineConfig",
    "EngineStats",
    "RunOutcome",
    "describe",
]
