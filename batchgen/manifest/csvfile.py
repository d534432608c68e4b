"""CSV manifests: a header row, then one job per row.

Columns are the request fields of the model's schema (`mode`, `prompt`, `duration`, ...,
`provider`, `request_type`, `callback_url`) of every known model, plus `id`, `repeat`, `model`
(the row's model; empty: the manifest's), `extends` (the job whose task this row continues),
`image_url` / `end_image_url` as a spelling of `image_urls`, and `meta.<name>` columns (the
row's meta, as text: what the report writes back in the same columns). Rows are numbered as a
spreadsheet shows them: the header is row 1. Empty cells mean "not given"; cells of numeric
fields become numbers, `true`/`false` in boolean fields (`sound`) become booleans; list fields
(`image_urls`) are split on `|`.
"""

from __future__ import annotations

import csv
import difflib
import math
from collections.abc import Iterator
from typing import Any

from batchgen.errors import ManifestProblem
from batchgen.manifest.meta import name_problem
from batchgen.manifest.schema import RequestFields, json_path
from batchgen.manifest.text import RawJob, Source

_ID, _REPEAT, _TOP, _INPUT, _IMAGE, _END, _MODEL, _META, _EXTENDS = range(9)
LIST_SEPARATOR = "|"
META_PREFIX = "meta."
"""A column `meta.<name>` gives each row's meta `<name>`, as text (the report's spelling)."""
_BOOLEANS = {"true": True, "false": False}


class CsvSource(Source):
    __slots__ = ("cells", "columns", "display", "label", "row", "where")

    def __init__(self, display: str, row: int, cells: list[str] | None, columns: dict[str, int]):
        self.display = display
        self.row = row
        self.cells = cells
        self.columns = columns
        self.where = f"{display}: row {row}"
        self.label = f"row {row}"

    def _given(self, column: str) -> bool:
        i = self.columns.get(column)
        cells = self.cells or ()
        return i is not None and i < len(cells) and bool(cells[i].strip())

    def _column(self, parts: tuple) -> str:
        name = parts[1] if parts[0] == "input" and len(parts) > 1 else parts[0]
        if name == "image_urls" and not self._given("image_urls") and self._given("image_url"):
            index = parts[2] if len(parts) > 2 else 0
            return "end_image_url" if index == 1 else "image_url"
        return str(name)

    def locate(self, parts: tuple) -> tuple[str, str] | None:
        column = self._column(parts)
        if not self._given(column):
            return None
        return f"{self.where}, column {column}", json_path(parts)

    def fallback(self, parts: tuple) -> tuple[str, str]:
        return f"{self.where}, column {self._column(parts)}", json_path(parts)


def _number(cell: str) -> int | float | None:
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _lines(text: str) -> Iterator[str]:
    """The lines of `text`, each with its "\n", one at a time (io.StringIO would hold a copy
    at 4 bytes a character). CR LF ends are left to the csv module, which accepts them."""
    start, end = 0, len(text)
    while start < end:
        stop = text.find("\n", start)
        if stop < 0:
            yield text[start:]
            return
        yield text[start : stop + 1]
        start = stop + 1


def _unclosed_quote(
    cells: list[str], header: list[str], first: int, last: int, text: str
) -> tuple[str, str] | None:
    """A quote opened on line `first` and not closed where the user meant: the reader then
    takes the lines below into one cell, and the rows it ate would be reported as unrelated
    problems. Told by the quote never closing before the end of the file, or by line `first`
    being a whole row by itself (as many commas as the header needs, some after the quote)
    while the lines taken hold commas too. A quoted prompt on two lines is fine.
    (column, message), else None."""
    if last <= first:
        return None
    lines = text.split("\n")
    opening = lines[first - 1]
    read = "\n".join(lines[first - 1 : last])
    never_closed = not "\n".join(lines[last:]).strip() and read.count('"') % 2 == 1
    quote = opening.find('"')
    whole = opening.count(",") >= len(header) - 1 and "," in opening[quote + 1 :]
    taken = [*lines[first : last - 1], lines[last - 1].split('"', 1)[0]]
    if not (never_closed or (whole and any("," in line for line in taken))):
        return None
    i = next((i for i, cell in enumerate(cells) if "\n" in cell), len(cells) - 1)
    name = header[i].strip() if i < len(header) else str(i + 1)
    end = "the end of the file" if never_closed else f"line {last}"
    return f"column {name}", (
        f"a quoted cell opens on line {first} and runs to {end}, taking {last - first} "
        "line(s) below it into one cell: its closing quote is missing (a quote inside a "
        'quoted cell is written twice: "")'
    )


def read_csv_jobs(
    text: str, display: str, fields: RequestFields, problems: list[ManifestProblem]
) -> Iterator[RawJob]:
    """The jobs of a CSV manifest. Cell and header problems are appended to `problems`
    (a row with a bad cell yields no job, so it is not reported twice)."""
    reader = csv.reader(_lines(text), strict=False)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        problems.append(ManifestProblem(f"{display}: row 1", "", f"not valid CSV: {exc}"))
        return
    if not header or not any(h.strip() for h in header):
        problems.append(ManifestProblem(display, "", "the CSV has no header row"))
        return
    known = {"id": (_ID, "id"), "repeat": (_REPEAT, "repeat"), "model": (_MODEL, "model")}
    known["extends"] = (_EXTENDS, "extends")
    known.update({name: (_TOP, name) for name in fields.top})
    known.update({name: (_INPUT, name) for name in fields.inputs})
    known["image_url"] = (_IMAGE, "image_urls")
    known["end_image_url"] = (_END, "image_urls")
    handlers: list[tuple[int, str, bool] | None] = []
    columns: dict[str, int] = {}
    for i, raw_name in enumerate(header):
        name = raw_name.strip()
        where = f"{display}: row 1, column {name or i + 1}"
        if name in columns:
            problems.append(ManifestProblem(where, "", f"column {name!r} appears twice"))
            handlers.append(None)
            continue
        if name.startswith(META_PREFIX):
            why = name_problem(name[len(META_PREFIX) :])
            if why is not None:
                problems.append(ManifestProblem(where, "", f"column {name!r}: {why}"))
                handlers.append(None)
                continue
            columns[name] = i
            handlers.append((_META, name[len(META_PREFIX) :], False))
            continue
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            message = f"unknown column {name!r}; {hint}" if name else f"column {i + 1} has no name"
            problems.append(ManifestProblem(where, "", message))
            handlers.append(None)
            continue
        columns[name] = i
        kind, key = known[name]
        handlers.append((kind, key, key in fields.numeric or kind == _REPEAT))
    if len(columns) != len(header):
        return  # a broken header would make every row wrong
    width = len(header)
    arrays = fields.arrays
    row = 1
    while True:
        first_line = reader.line_num + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            problems.append(
                ManifestProblem(f"{display}: row {row + 1}", "", f"not valid CSV: {exc}")
            )
            return
        if cells is None:
            return
        row += 1
        swallowed = _unclosed_quote(cells, header, first_line, reader.line_num, text)
        if swallowed is not None:  # one clear error, not the rows it ate reported as others
            problems.append(
                ManifestProblem(f"{display}: row {row}, {swallowed[0]}", "", swallowed[1])
            )
            return
        if len(cells) > width:
            if any(c.strip() for c in cells[width:]):
                problems.append(
                    ManifestProblem(
                        f"{display}: row {row}",
                        "",
                        f"the row has {len(cells)} cells but the header names {width} columns",
                    )
                )
                continue
            cells = cells[:width]
        top: dict[str, Any] = {}
        inp: dict[str, Any] = {}
        job_id = repeat = image = end = model = extends = None
        meta: dict[str, Any] = {}
        bad = False
        for handler, cell in zip(handlers, cells, strict=False):
            cell = cell.strip()
            if not cell:
                continue
            kind, key, numeric = handler  # type: ignore[misc]
            if kind == _META:
                meta[key] = cell
                continue
            value: Any = cell
            if numeric:
                number = _number(cell)
                if number is not None:
                    value = number
                elif kind == _REPEAT:
                    where = f"{display}: row {row}, column repeat"
                    problems.append(ManifestProblem(where, "", f"{cell[:40]!r} is not a number"))
                    bad = True
                    continue
                # otherwise the text stays, and the request schema says what it should be
            elif key in fields.booleans and cell.lower() in _BOOLEANS:
                value = _BOOLEANS[cell.lower()]  # `sound`: true/false; other text stays text
            if kind == _INPUT:
                if key in arrays:
                    value = [p.strip() for p in cell.split(LIST_SEPARATOR) if p.strip()]
                inp[key] = value
            elif kind == _TOP:
                top[key] = value
            elif kind == _ID:
                job_id = value
            elif kind == _REPEAT:
                repeat = value
            elif kind == _MODEL:
                model = value
            elif kind == _EXTENDS:
                extends = value
            elif kind == _IMAGE:
                image = value
            else:
                end = value
        if image is not None or end is not None:
            where = f"{display}: row {row}, column "
            if "image_urls" in inp:
                problems.append(
                    ManifestProblem(
                        where + "image_url", "", "give image_urls or image_url, not both"
                    )
                )
                bad = True
            elif image is None:
                problems.append(
                    ManifestProblem(
                        where + "end_image_url", "", "end_image_url needs image_url (the start)"
                    )
                )
                bad = True
            else:
                inp["image_urls"] = [image] if end is None else [image, end]
        if not (top or inp or job_id is not None or repeat is not None) and not bad:
            continue  # a blank row
        if not bad:
            src = CsvSource(display, row, cells, columns)
            yield RawJob(top, inp, job_id, repeat, src, model, meta or None, None, extends)
