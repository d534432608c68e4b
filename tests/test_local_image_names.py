"""An image entry holding a NUL character is refused at its place (exit 2), not a traceback:
os.stat raises ValueError there, not OSError (found by test_reliability_input's generator)."""

from __future__ import annotations

from pathlib import Path

from batchgen.cli import main


def test_a_nul_character_in_an_image_path_is_a_placed_problem(tmp_path: Path, capsys) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        'jobs:\n  - {id: a, mode: standard-image-to-video, prompt: x, duration: 5, '
        'image_urls: ["\\0"]}\n'
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: jobs[0].image_urls[0]: not a file name (it holds a NUL character)" in err
    assert "Traceback" not in err
