"""A faithful fake of APIXO's video API (every model with a spec), for tests, benchmarks,
`--sandbox` and `batchgen simulate`. See `app.py` for the wire choices, `tasks.py` for the
lifecycle and the prompt markers, `config.py` for every knob."""

from batchgen.simulator.config import FAULT_FIELDS, SimConfig
from batchgen.simulator.files import expected_bytes, expected_sha256
from batchgen.simulator.server import Simulator
from batchgen.simulator.tasks import MARKERS

__all__ = ["FAULT_FIELDS", "MARKERS", "SimConfig", "Simulator", "expected_bytes", "expected_sha256"]
