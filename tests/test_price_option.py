"""Issue 26 bug 5: a `--price` that would be ignored is an error naming the accepted form.

`--price text-to-video:5=0.5` used to mean Kling 2.1 (which has no such mode) and
`--price bogus:5=9` priced nothing, both without a word; a price is only ever read for a job's
class, so one for no known model, mode or duration can only be a mistake.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.cli import main
from batchgen.money.prices import parse_key

ROOT = Path(__file__).resolve().parents[1]
FORM = "MODEL/MODE:DURATION=USD, e.g. kling-2-5-turbo-pro/text-to-video:5=0.5"


@pytest.mark.parametrize(
    ("price", "says"),
    [
        ("text-to-video:5=0.5", "needs its model"),
        ("bogus:5=9", "needs its model"),
        ("kling-3/text-to-video:5=1", "unknown model 'kling-3'"),
        ("kling-2-1/bogus:5=1", "kling-2-1 has no mode 'bogus'"),
        ("kling-2-5-turbo-pro/text-to-video:7=1", "has no duration 7"),
        ("kling-2-1/pro-image-to-video=1", FORM),
        ("nonsense", FORM),
    ],
)
def test_a_price_for_no_known_class_is_an_error_exit_2(
    price: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["run", str(ROOT / "manifests/example.yaml"), "--sandbox", "--output", str(out)]
    try:
        code = main([*argv, "--price", price])
    except SystemExit as exc:  # argparse's own error
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2, err
    assert says in err, err
    assert "MODEL/MODE:DURATION" in err or "its mode" in err or "known:" in err, err
    assert not (out / "batchgen.db").exists()  # nothing recorded, nothing sent


def test_the_documented_form_is_taken() -> None:
    assert parse_key("kling-2-5-turbo-pro/text-to-video:5", None) == (
        "kling-2-5-turbo-pro/text-to-video/5s"
    )
    # a manifest's `budget: prices:` may leave the model out: the manifest's own model
    assert parse_key("pro-image-to-video:10", "kling-2-1") == "kling-2-1/pro-image-to-video/10s"
    with pytest.raises(ValueError, match="no mode"):
        parse_key("text-to-video:5", "kling-2-1")


def test_the_docs_document_the_form() -> None:
    money = (ROOT / "docs" / "money.md").read_text()
    assert "--price kling-2-5-turbo-pro/text-to-video:5=0.5" in money
