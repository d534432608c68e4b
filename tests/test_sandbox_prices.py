"""Issue 26 friction 10: the sandbox's prices are batchgen's own, for every model it serves.

The simulator priced Kling 2.5 Turbo Pro at its fallback $0.50 while batchgen lists $0.35
and $0.70, so every sandbox run of that model warned of a price mismatch: a warning a new
user cannot act on.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from batchgen import models
from batchgen.cli import main
from batchgen.money.prices import MICROS, table_prices
from batchgen.simulator.billing import Billing

ROOT = Path(__file__).resolve().parents[1]


def test_the_simulator_prices_every_class_as_batchgen_lists_it() -> None:
    billing = Billing(None, "", False)
    compared = 0
    for model in models.known():
        for (mode, duration), micros in table_prices(model).items():
            body = {"input": {"mode": mode, "duration": duration}}
            assert billing.price(body, model) == Decimal(micros) / MICROS, (model, mode, duration)
            compared += 1
    assert compared >= 12  # Kling 2.1's eight classes and Kling 2.5 Turbo Pro's four


def test_a_sandbox_run_of_both_models_warns_of_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    manifest = ROOT / "manifests" / "mixed-models.yaml"
    assert main(["run", str(manifest), "--sandbox", "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert "kling-2-5-turbo-pro" in err  # its prices were learned, and matched
    assert "learned from the balance" in err
    assert [line for line in err.splitlines() if "WARNING" in line or "warning" in line] == []
