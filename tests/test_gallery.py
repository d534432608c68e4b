"""gallery.html without a browser: escaping, CSP, counts, links that stay in the folder, posters,
the command."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import stat
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from batchgen import cli
from batchgen.runner import execute
from batchgen.simulator import Simulator
from batchgen.simulator.files import ASSET_PATH
from batchgen.ui import gallery as g
from batchgen.ui import gallery_assets as assets
from batchgen.ui import posters
from tests.enginekit import KEY, SCALE, mixed_jobs, options, prepare_state

EVIL = "<img src=x onerror=alert(1)> \"quoted\" 'single' & </script><script>alert(2)</script>"


class Parsed(HTMLParser):
    """Every start tag with its attributes, and the text of <script>/<style> blocks."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.raw: dict[str, list[str]] = {"script": [], "style": []}
        self._in: str | None = None
        self.text: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in self.raw:
            self._in = tag
            self.raw[tag].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.raw[self._in][-1] += data
        else:
            self.text.append(data)

    def attrs(self, name: str) -> list[str]:
        return [a[name] for _, a in self.tags if a.get(name) is not None]

    def of(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def rec(i: int = 0, status: str = "done", **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"job-{i:04d}",
        "status": status,
        "task_id": f"task_{i:04x}",
        "files": [
            {
                "path": f"job-{i:04d}.mp4",
                "bytes": 1781,
                "sha256": None,
                "url": "https://cdn.example.com/secret/0.mp4",
            }
        ]
        if status == "done"
        else [],
        "fail_code": None,
        "fail_msg": None,
        "submitted_at": None,
        "completed_at": "2026-01-01T00:00:01.000Z",
        "cost_time_ms": 75_300,
        "mode": "standard-image-to-video",
        "duration": 5,
        "prompt": f"job {i}: a calm sea",
        "negative_prompt": None,
        "aspect_ratio": None,
        "cfg_scale": None,
        "provider": None,
        "expires_at": None,
        "note": None,
    }
    base.update(kw)
    return base


def render(records: list[dict[str, Any]], out: Path, **kw: Any) -> str:
    return g.render_gallery(records, title=kw.pop("title", "t"), output_dir=out, **kw)


# -- escaping -----------------------------------------------------------------------------------


def test_every_text_from_outside_is_escaped(tmp_path: Path) -> None:
    records = [
        rec(
            0,
            prompt=EVIL,
            negative_prompt=EVIL,
            id=EVIL,
            provider=EVIL,
            aspect_ratio=EVIL,
            task_id=EVIL,
            mode=EVIL,
            cfg_scale=EVIL,
            completed_at=EVIL,
        ),
        rec(1, "failed", fail_code=EVIL, fail_msg=EVIL, prompt="x"),
        rec(2, "ambiguous", note=EVIL),
        rec(3, EVIL),  # even a status the page does not know
        rec(4, "orphaned", note=EVIL),  # its note holds the escaped task id
    ]
    page = render(records, tmp_path, title=EVIL)
    assert "<img" not in page and "alert(2)</script>" not in page
    assert "onerror=alert(1)" not in page.replace("&lt;img src=x onerror=alert(1)&gt;", "")
    parsed = Parsed(page)
    assert len(parsed.raw["script"]) == 1 and len(parsed.raw["style"]) == 1
    assert "alert" not in parsed.raw["script"][0] and "job-0000" not in parsed.raw["script"][0]
    allowed = {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "header",
        "h1",
        "ul",
        "li",
        "button",
        "b",
        "span",
        "div",
        "label",
        "select",
        "option",
        "input",
        "main",
        "article",
        "video",
        "p",
        "dl",
        "dt",
        "dd",
        "a",
        "script",
    }
    assert {t for t, _ in parsed.tags} <= allowed
    assert not [a for _, attrs in parsed.tags for a in attrs if a.startswith("on")]
    text = "".join(parsed.text)
    assert text.count(EVIL) >= 12  # each value shows as itself, as text
    # In attributes, the value comes back whole (quotes escaped, nothing broken out).
    assert EVIL in parsed.attrs("data-mode") and EVIL in parsed.attrs("data-status")
    assert f"<title>{g._esc(EVIL)}</title>" in page


def test_unicode_and_line_separators_pass_through_as_text(tmp_path: Path) -> None:
    prompt = "café \u2028 line \u2029 para — 夜の街 🎬"
    page = render([rec(0, prompt=prompt)], tmp_path)
    assert prompt in "".join(Parsed(page).text)


# -- CSP ----------------------------------------------------------------------------------------


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_csp_allows_only_the_inline_blocks_and_local_media(tmp_path: Path) -> None:
    page = render([rec(0, prompt=EVIL), rec(1, "failed")], tmp_path)
    parsed = Parsed(page)
    metas = [m for m in parsed.of("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert len(metas) == 1
    # The policy comes before anything it governs.
    assert page.index("Content-Security-Policy") < page.index("<style>")
    policy = dict(
        (d.split()[0], d.split()[1:]) for d in metas[0]["content"].split(";") if d.strip()
    )
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == [_sha(parsed.raw["script"][0])]
    assert policy["style-src"] == [_sha(parsed.raw["style"][0])]
    assert policy["media-src"] == ["'self'", "file:"]
    assert policy["img-src"] == ["'self'", "file:"]
    assert policy["base-uri"] == ["'none'"]
    flat = " ".join(v for vs in policy.values() for v in vs)
    for bad in ("http:", "https:", "*", "unsafe-inline", "unsafe-eval", "data:", "blob:"):
        assert bad not in flat


def test_the_script_is_constant_so_its_hash_is(tmp_path: Path) -> None:
    a = Parsed(render([rec(0)], tmp_path)).raw["script"][0]
    b = Parsed(render([rec(i, prompt=EVIL) for i in range(50)], tmp_path)).raw["script"][0]
    assert a == b == assets._JS
    assert _sha(a) == assets.SCRIPT_HASH


def test_nothing_remote_is_referenced(tmp_path: Path) -> None:
    page = render([rec(0), rec(1, "expired", note="urls died")], tmp_path)
    parsed = Parsed(page)
    for name in ("src", "href", "data-src", "data-poster", "poster", "action"):
        for value in parsed.attrs(name):
            assert not re.match(r"^[a-z][a-z0-9+.-]*:", value, re.I), value
            assert not value.startswith("//"), value
    assert "cdn.example.com" not in page  # result URLs (which expire, and may carry tokens)
    assert not parsed.of("link") and not parsed.of("img") and not parsed.of("iframe")


# -- cards and counts ---------------------------------------------------------------------------


def test_one_card_per_job_and_counts_per_status(tmp_path: Path) -> None:
    statuses = (
        ["done"] * 5
        + ["failed"] * 2
        + ["expired", "ambiguous", "pending", "in_flight", "cancelled"]
    )
    records = [rec(i, s) for i, s in enumerate(statuses)]
    parsed = Parsed(render(records, tmp_path))
    cards = parsed.of("article")
    assert [c["data-status"] for c in cards] == statuses
    chips = {b["data-status"]: b for b in parsed.of("button")}
    assert list(chips) == [
        "done",
        "failed",
        "expired",
        "ambiguous",
        "in_flight",
        "pending",
        "cancelled",
    ]
    page = render(records, tmp_path)
    assert 'data-status="done" aria-pressed="false">done<b>5</b>' in page
    assert 'data-status="failed" aria-pressed="false">failed<b>2</b>' in page
    assert "jobs<b>12</b>" in page and "12 of 12 shown" in page
    assert len(parsed.of("video")) == 5
    options = [o["value"] for o in parsed.of("option")]
    assert options[:8] == [
        "",
        "done",
        "failed",
        "expired",
        "ambiguous",
        "in_flight",
        "pending",
        "cancelled",
    ]


def test_a_card_shows_the_job(tmp_path: Path) -> None:
    (tmp_path / "job-0000.mp4").write_bytes(b"x")
    r = rec(
        0,
        prompt="a fox",
        negative_prompt="blur",
        aspect_ratio="9:16",
        cfg_scale=0.4,
        provider="official",
        cost_time_ms=125_000,
        mode="master-text-to-video",
        duration=10,
    )
    page = render([r], tmp_path)
    text = " ".join(Parsed(page).text)
    for want in (
        "job-0000",
        "a fox",
        "blur",
        "9:16",
        "0.4",
        "official",
        "task_0000",
        "2 min 05 s",
        "master-text-to-video",
        "10 s",
        "done",
        "job-0000.mp4",
        "1.8 kB",
    ):
        assert want in text, want
    video = Parsed(page).of("video")[0]
    assert video["data-src"] == "job-0000.mp4"
    assert video["preload"] == "none" and "controls" in video and "src" not in video
    assert "file not found" not in page


def test_problem_jobs_show_the_reason_instead_of_a_video(tmp_path: Path) -> None:
    records = [
        rec(
            0,
            "failed",
            fail_code="CONTENT_VIOLATION",
            fail_msg="Content does not meet safety guidelines",
        ),
        rec(1, "expired", note="result URLs expired before download"),
        rec(2, "ambiguous", note="the submit may have reached the provider"),
        rec(3, "failed"),
        rec(4, "pending"),
    ]
    page = render(records, tmp_path)
    parsed = Parsed(page)
    assert not parsed.of("video")
    text = " ".join(parsed.text)
    assert "CONTENT_VIOLATION Content does not meet safety guidelines" in text
    assert "result URLs expired before download" in text
    assert "the submit may have reached the provider" in text
    assert "no reason given" in text
    assert page.count('class="media problem') == 4
    assert page.count('class="media waiting') == 1


def test_a_done_job_whose_file_is_gone_says_so(tmp_path: Path) -> None:
    page = render([rec(0)], tmp_path)
    assert "file not found in the folder" in page
    assert Parsed(page).of("video")  # still linked: the folder may be incomplete on purpose


# -- links never leave the folder ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../x.mp4",
        "a/../../x.mp4",
        "a/..",
        "..",
        "C:\\x.mp4",
        "C:x.mp4",
        "\\\\server\\share\\x.mp4",
        "a\\..\\..\\x.mp4",
        "",
        ".",
        "./",
        "x\x00.mp4",
        "x\n.mp4",
        None,
        7,
        "//host/x.mp4",
    ],
)
def test_unsafe_paths_are_not_linked(tmp_path: Path, path: Any) -> None:
    assert g.safe_relpath(path, tmp_path) is None
    r = rec(0, files=[{"path": path, "bytes": 5, "sha256": None, "url": "u"}])
    parsed = Parsed(render([r], tmp_path))
    assert not parsed.of("video") and not parsed.of("a")
    if isinstance(path, str) and path not in ("", "."):
        assert "not linked" in " ".join(parsed.text)


def test_a_symlink_out_of_the_folder_is_not_linked(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "secret.mp4").write_bytes(b"s")
    (out / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    (out / "sub").symlink_to(tmp_path)
    assert g.safe_relpath("link.mp4", out) is None
    assert g.safe_relpath("sub/secret.mp4", out) is None
    (out / "real.mp4").write_bytes(b"r")
    (out / "alias.mp4").symlink_to(out / "real.mp4")
    assert g.safe_relpath("alias.mp4", out) == PurePosixPath("alias.mp4")


def test_safe_names_are_linked_percent_encoded(tmp_path: Path) -> None:
    records = [
        rec(0, files=[{"path": "standard/a b#1?.mp4", "bytes": 1, "sha256": None, "url": "u"}]),
        rec(1, files=[{"path": "javascript:alert(1).mp4", "bytes": 1, "sha256": None, "url": "u"}]),
        rec(2, files=[{"path": "./x/./y.mp4", "bytes": 1, "sha256": None, "url": "u"}]),
    ]
    parsed = Parsed(render(records, tmp_path))
    assert parsed.attrs("data-src") == [
        "standard/a%20b%231%3F.mp4",
        "javascript%3Aalert%281%29.mp4",
        "x/y.mp4",
    ]
    assert parsed.attrs("href") == parsed.attrs("data-src")


def test_a_page_elsewhere_links_back_into_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    page_dir = tmp_path / "review"
    parsed = Parsed(render([rec(0)], out, page_dir=page_dir))
    assert parsed.attrs("data-src") == ["../out/job-0000.mp4"]


# -- posters ------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_posters_where_ffmpeg_is(tmp_path: Path) -> None:
    shutil.copy(ASSET_PATH, tmp_path / "job-0000.mp4")
    (tmp_path / "job-0001.mp4").write_bytes(b"not a video at all")
    records = [
        rec(0, files=[{"path": "job-0000.mp4", "sha256": "ab" * 32}]),
        rec(1),
        rec(2, "failed"),
    ]
    posters = g.make_posters(records, tmp_path)
    assert list(posters) == ["job-0000.mp4"]  # the broken one is skipped silently
    poster = tmp_path / posters["job-0000.mp4"]
    assert poster.parent.name == "posters" and poster.read_bytes()[:2] == b"\xff\xd8"
    assert poster.name == "job-0000-abababab.jpg"
    mtime = poster.stat().st_mtime_ns
    assert g.make_posters(records, tmp_path) == posters  # reused, not redone
    assert poster.stat().st_mtime_ns == mtime
    parsed = Parsed(render(records, tmp_path, posters=posters))
    assert parsed.attrs("data-poster") == ["posters/job-0000-abababab.jpg"]
    assert not [p for p in tmp_path.rglob("*.tmp*")]


def test_no_ffmpeg_no_posters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(ASSET_PATH, tmp_path / "job-0000.mp4")
    monkeypatch.setattr(posters.shutil, "which", lambda name: None)
    assert g.make_posters([rec(0)], tmp_path) == {}
    assert not (tmp_path / "posters").exists()
    assert not Parsed(render([rec(0)], tmp_path, posters={})).attrs("data-poster")


def test_a_poster_path_that_leaves_the_folder_is_ignored(tmp_path: Path) -> None:
    page = render([rec(0)], tmp_path, posters={"job-0000.mp4": "../../etc/x.jpg"})
    assert not Parsed(page).attrs("data-poster")


# -- the command and write_gallery on a real batch ----------------------------------------------


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    tmp = tmp_path_factory.mktemp("gallery")
    jobs = mixed_jobs(6, violations=(1,), tag="cmd ")
    state = prepare_state(tmp, jobs)

    async def go() -> None:
        async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=3) as sim:
            await execute(options(tmp, sim.base_url))

    asyncio.run(go())
    return state


def test_command_writes_the_page_into_the_output_folder(batch: Path, capsys) -> None:
    out = batch.parent
    assert cli.main(["gallery", str(batch), "--no-posters"]) == 0
    page_path = out / "gallery.html"
    assert capsys.readouterr().out.strip() == f"gallery: {page_path}"
    page = page_path.read_text(encoding="utf-8")
    parsed = Parsed(page)
    assert len(parsed.of("article")) == 6
    assert sorted(parsed.attrs("data-src")) == [f"job-{i:04d}.mp4" for i in (0, 2, 3, 4, 5)]
    for src in parsed.attrs("data-src"):
        assert (out / src).is_file()
    assert "file not found" not in page
    assert stat.S_IMODE(page_path.stat().st_mode) == 0o644
    assert not [p for p in out.iterdir() if p.name.startswith(".gallery-")]


def test_command_with_out_and_title(batch: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "review" / "all.html"
    assert (
        cli.main(
            ["gallery", str(batch), "--out", str(target), "--title", "<b>T</b>", "--no-posters"]
        )
        == 0
    )
    page = target.read_text(encoding="utf-8")
    rel = os.path.relpath(batch.parent, target.parent)
    assert f'data-src="{rel}/job-0000.mp4"' in page
    assert "<title>&lt;b&gt;T&lt;/b&gt;</title>" in page
    capsys.readouterr()
    # An existing folder as --out: gallery.html inside it.
    assert cli.main(["gallery", str(batch), "--out", str(tmp_path), "--no-posters"]) == 0
    assert (tmp_path / "gallery.html").is_file()


def test_write_gallery_makes_posters_when_it_can(batch: Path) -> None:
    from batchgen import store as st

    store = st.Store(batch, readonly=True)
    try:
        path = g.write_gallery(store, posters=True)
    finally:
        store.close()
    page = path.read_text(encoding="utf-8")
    if shutil.which("ffmpeg"):
        assert page.count("data-poster=") == 5
        assert len(list((batch.parent / "posters").glob("*.jpg"))) == 5
    else:
        assert "data-poster=" not in page


def test_command_errors_are_clean(tmp_path: Path, capsys) -> None:
    assert cli.main(["gallery", str(tmp_path / "missing.db")]) == 2
    assert "no such state file" in capsys.readouterr().err
    assert cli.main(["gallery", str(tmp_path)]) == 2
    assert "a folder" in capsys.readouterr().err
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite")
    assert cli.main(["gallery", str(junk)]) == 2
    assert "error:" in capsys.readouterr().err


def test_unwritable_target_is_a_clean_error(batch: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["gallery", str(batch), "--out", str(blocker / "g.html"), "--no-posters"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cannot write the gallery" in err
