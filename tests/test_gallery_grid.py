"""The gallery by variables: a sandbox run of a 3 x 2 matrix, its page clicked through in
headless Chromium (filters per variable, the grid with an empty and a failed cell), and the
page's pieces without a browser."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from batchgen.ui.gallery import render_gallery
from batchgen.ui.gallery_grid import collect, controls, meta_attr
from tests.test_gallery_browser import browser, chromium  # noqa: F401 (the fixture)

GRID = """\
version: 1
name: foxes
jobs:
  - id: "fox-{season}-{aspect_ratio}"
    mode: master-text-to-video
    duration: 5
    prompt: "a red fox in {season}, {look}"
    matrix:
      season: [spring, summer, winter]
      aspect_ratio: ["16:9", "9:16"]
      exclude: [{season: summer, aspect_ratio: "9:16"}]
      include:
        - {look: calm}
        - {season: winter, aspect_ratio: "9:16", look: "[sim:content_violation]"}
"""

CELLS = """(function(){
  var out = [];
  document.querySelectorAll('#grid tbody tr').forEach(function (tr) {
    var row = [tr.querySelector('th').textContent];
    tr.querySelectorAll('td').forEach(function (td) {
      var ids = Array.from(td.querySelectorAll('.card .id'), function (e) {
        return e.textContent;
      });
      row.push(td.className + ':' + ids.join(','));
    });
    out.push(row);
  });
  return out;
})()"""


def _sandbox_gallery(tmp_path: Path) -> Path:
    manifest = tmp_path / "grid.yaml"
    manifest.write_text(GRID)
    out = tmp_path / "out"
    run = [sys.executable, "-m", "batchgen", "run", str(manifest), "--sandbox", "--quiet",
           "--output", str(out)]  # fmt: skip
    done = subprocess.run(run, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr  # the one content violation fails
    gallery = [sys.executable, "-m", "batchgen", "gallery", str(out / "batchgen.db")]
    subprocess.run(gallery, capture_output=True, text=True, check=True)
    return out / "gallery.html"


async def _choose(page, selector: str, value: str) -> None:  # type: ignore[no-untyped-def]
    await page.js(
        f"(function(){{var e=document.querySelector({json.dumps(selector)});"
        f"e.value={json.dumps(value)};e.dispatchEvent(new Event('change',{{bubbles:true}}));}})()"
    )
    await asyncio.sleep(0.02)


async def test_grid_of_a_sandbox_matrix_in_chromium(tmp_path: Path, chromium: str) -> None:  # noqa: F811
    page_path = _sandbox_gallery(tmp_path)
    async with browser(chromium) as page:
        await page.open(page_path.as_uri())
        assert await page.js("document.querySelectorAll('.card').length") == 5  # 6 - 1 excluded
        assert await page.js("document.getElementById('grid-wrap').hidden") is True
        # a filter per variable
        keys = await page.js("Array.from(document.querySelectorAll('select.f-meta'),"
                             "function (s) { return s.dataset.key; })")  # fmt: skip
        assert keys == ["season", "aspect_ratio", "look"]
        await _choose(page, "select.f-meta[data-key=season]", "winter")
        assert await page.js("document.getElementById('shown').textContent") == "2 of 5 shown"
        await _choose(page, "select.f-meta[data-key=season]", "")
        # the grid: seasons as rows, aspect ratios as columns
        await _choose(page, "#g-row", "season")
        await _choose(page, "#g-col", "aspect_ratio")
        assert await page.js("document.getElementById('cards').hidden") is True
        head = await page.js("Array.from(document.querySelectorAll('#grid thead th'),"
                             "function (t) { return t.textContent; })")  # fmt: skip
        assert head[1:] == ["16:9", "9:16"]
        assert (
            await page.js(CELLS)
            == [
                ["spring", "full:fox-spring-16-9", "full:fox-spring-9-16"],
                ["summer", "full:fox-summer-16-9", "empty:"],
                ["winter", "full:fox-winter-16-9", "bad:fox-winter-9-16"],
                ["autumn" if False else "winter", "", ""],
            ][:3]
        )
        # filters narrow the grid too; back to the list puts every card back in order
        await _choose(page, "select.f-meta[data-key=aspect_ratio]", "9:16")
        assert await page.js("document.querySelectorAll('#grid thead th').length") == 2
        await _choose(page, "select.f-meta[data-key=aspect_ratio]", "")
        await _choose(page, "#g-col", "")
        assert await page.js("document.getElementById('grid-wrap').hidden") is True
        ids = await page.js("Array.from(document.querySelectorAll('#cards .card .id'),"
                            "function (e) { return e.textContent; })")  # fmt: skip
        assert ids[0] == "fox-spring-16-9" and len(ids) == 5
        assert page.errors == []


def test_page_pieces_escape_and_encode() -> None:
    recs = [{"id": "a", "status": "done", "meta": {"k": 'x"<&', "n": 5.0}},
            {"id": "b", "status": "failed", "meta": {"k": "y"}}]  # fmt: skip
    assert collect(recs) == {"k": ['x"<&', "y"], "n": ["5"]}
    assert meta_attr(recs[0]["meta"]) == "k=x%22%3C%26&n=5"
    html = controls(collect(recs))
    assert 'value="x&quot;&lt;&amp;"' in html and 'id="g-row"' in html
    assert 'id="g-row"' not in controls({"k": ["y"]})  # one variable: no grid
    page = render_gallery(recs, title="t", output_dir=Path("."))
    assert 'data-meta="k=x%22%3C%26&amp;n=5"' in page
    assert "<dt>n</dt><dd>5</dd>" in page


async def make_screenshot() -> bytes:
    """The README's picture of the grid: `python -m tests.test_gallery_grid docs/x.png`."""
    import base64
    import tempfile

    from tests.test_gallery_browser import find_chromium

    chromium_path = find_chromium()
    if chromium_path is None:
        raise SystemExit("no chromium")
    with tempfile.TemporaryDirectory(prefix="batchgen-grid-shot-") as tmp_name:
        page_path = _sandbox_gallery(Path(tmp_name))
        async with browser(chromium_path) as page:
            await page.send("Emulation.setDeviceMetricsOverride", width=1280, height=1640,
                            deviceScaleFactor=1, mobile=False)  # fmt: skip
            await page.open(page_path.as_uri())
            await _choose(page, "#g-row", "season")
            await _choose(page, "#g-col", "aspect_ratio")
            await asyncio.sleep(1.0)  # the first frames of the visible videos
            shot = await page.send("Page.captureScreenshot", format="png")
    return base64.b64decode(shot["data"])


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/gallery-grid.png")
    target.write_bytes(asyncio.run(make_screenshot()))
    print(f"wrote {target}")
