"""Issue 26 small things in manifests: a problem is placed where the user must look.

A typo in a block key (`defualts:` followed by an indented mapping) pointed one line low; a
missing `jobs_csv` file named only the CSV, not the manifest line that names it; an unclosed
quote in a CSV swallowed the rows below it and gave unrelated errors about them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.errors import ManifestError
from batchgen.manifest import load_manifest

JOB = "  - id: a\n    mode: master-text-to-video\n    prompt: hi\n    aspect_ratio: '16:9'\n"


def problems(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return [str(p) for p in caught.value.problems]


def test_a_block_key_typo_points_at_its_own_line(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text("version: 1\nname: t\ndefualts:\n  input: {duration: 5}\njobs:\n" + JOB)
    assert problems(m)[0].startswith(f"{m}:3: defualts: unknown field 'defualts'"), problems(m)
    m.write_text("version: 1\nname: t\njobs:\n" + JOB + "    inptu:\n      duration: 5\n")
    assert any(p.startswith(f"{m}:8: jobs[0].inptu: unknown field") for p in problems(m))


def test_a_missing_jobs_csv_names_the_manifest_line(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text("version: 1\nname: t\n\njobs_csv: nothere.csv\n")
    assert problems(m) == [f"{m}:4: jobs_csv: {tmp_path / 'nothere.csv'}: no such file"]


HEADER = "id,mode,prompt,duration,aspect_ratio\n"


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (  # never closed: runs to the end of the file
            'a,master-text-to-video,"a fox,5,16:9\nb,master-text-to-video,hello,5,16:9\n',
            "row 2, column prompt: a quoted cell opens on line 2 and runs to the end of the "
            "file, taking 1 line(s)",
        ),
        (  # closed by the next row's quote: the row between is eaten
            'a,master-text-to-video,"a fox,5,16:9\nb,master-text-to-video,"hello",5,16:9\n'
            "c,master-text-to-video,hi,5,16:9\n",
            "row 2, column prompt: a quoted cell opens on line 2 and runs to line 3",
        ),
    ],
)
def test_an_unclosed_csv_quote_is_one_clear_error_with_its_row(
    tmp_path: Path, rows: str, expected: str
) -> None:
    m = tmp_path / "m.csv"
    m.write_text(HEADER + rows)
    found = problems(m)
    assert len(found) == 1 and found[0].startswith(f"{m}: {expected}"), found
    assert "closing quote is missing" in found[0]


def test_a_quoted_cell_on_two_lines_is_still_fine(tmp_path: Path) -> None:
    m = tmp_path / "m.csv"
    m.write_text(HEADER + 'a,master-text-to-video,"a fox\non two lines",5,16:9\n')
    assert load_manifest(m).jobs[0].body["input"]["prompt"] == "a fox\non two lines"
    m.write_text(
        HEADER + 'a,master-text-to-video,"a fox\ntwo",5,16:9\nb,master-text-to-video,x,5,16:9\n'
    )
    assert len(load_manifest(m).jobs) == 2
