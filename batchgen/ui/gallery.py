"""`gallery.html`: every job of a batch on one self-contained page, for review by eye.

The page is built from `report.records()` alone and lives in the output folder next to the
MP4s, which it links relatively, so the folder can be zipped and shared. Nothing is loaded from
elsewhere: the CSS and the few lines of JavaScript are inline, and a Content-Security-Policy
meta tag allows only those exact inline blocks (by SHA-256 hash) and media from the folder.

Every piece of text that came from a manifest or from the server goes through `html.escape`;
job data is never put inside the script, so the script is a constant and its hash never
changes. Even if escaping were bypassed, an injected inline handler (`onerror=...`) or
`<script>` could not run: the policy allows only the hashed script.

Scaling: each card carries its video's address in `data-src`; an IntersectionObserver sets
`src` when the card nears the viewport and drops it again when the card is far away (unless
playing), so a page of 5,000 jobs holds only a screenful of media players.
"""

from __future__ import annotations

import contextlib
import html
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from batchgen import store as st
from batchgen.adapters.sinks.objectlinks import Links
from batchgen.errors import BatchgenError
from batchgen.ui import gallery_grid as grid
from batchgen.ui import gallery_inputs as gi
from batchgen.ui import report
from batchgen.ui.gallery_assets import _CSS, _JS, CSP
from batchgen.ui.posters import make_posters, safe_relpath

DEFAULT_NAME = "gallery.html"

# Order of the status counts at the top; anything else is shown after these.
STATUS_ORDER = (
    "done",
    "failed",
    "expired",
    "ambiguous",
    "orphaned",
    "in_flight",
    "pending",
    "cancelled",
)
# Statuses that show the provider's reason where the video would be.
PROBLEM_STATUSES = frozenset({"failed", "expired", "ambiguous", "orphaned"})


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _href(clean: PurePosixPath, prefix: tuple[str, ...] = ()) -> str:
    """A relative URL for a clean path: every segment percent-encoded (so `:` or `#` in a file
    name can never turn into a scheme or a fragment)."""
    segments = [*prefix, *clean.parts]
    return "/".join(quote(seg, safe="") if seg != ".." else ".." for seg in segments)


def _link_prefix(output_dir: Path, page_dir: Path | None) -> tuple[str, ...] | None:
    """Path segments from the page's folder to the output folder ('' when the same)."""
    if page_dir is None:
        return ()
    rel = os.path.relpath(Path(output_dir).resolve(), Path(page_dir).resolve())
    if rel == ".":
        return ()
    return tuple(rel.split(os.sep))


def _seconds(ms: Any) -> str | None:
    if not isinstance(ms, int | float) or isinstance(ms, bool) or ms < 0:
        return None
    s = ms / 1000
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(round(s), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def _size(n: Any) -> str:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        return ""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _cls(status: str) -> str:
    return f"s-{status}" if status in STATUS_ORDER else "s-other"


def _card(
    rec: dict[str, Any],
    output_dir: Path,
    posters: dict[str, str],
    prefix: tuple[str, ...],
    inputs: dict[str, list[gi.InputImage]],
    remote: dict[str, str] | None = None,
) -> str:
    status = str(rec.get("status") or "unknown")
    mode = rec.get("mode")
    files = rec.get("files") if isinstance(rec.get("files"), list) else []
    links: list[tuple[PurePosixPath | None, dict[str, Any]]] = []
    for f in files:
        if isinstance(f, dict):
            links.append((safe_relpath(f.get("path"), output_dir), f))

    # The media box: the video for done jobs, the reason for problems, a plain word otherwise.
    video = next((clean for clean, _ in links if clean is not None), None)
    link = (remote or {}).get(video.as_posix()) if video is not None else None
    if status == "done" and video is not None:
        attrs = [f'data-src="{_esc(link or _href(video, prefix))}"']
        poster = posters.get(video.as_posix())
        clean_poster = safe_relpath(poster, output_dir) if poster else None
        if clean_poster is not None:
            attrs.append(f'data-poster="{_esc(_href(clean_poster, prefix))}"')
        missing = link is None and not Path(output_dir).joinpath(*video.parts).is_file()
        note = '<span class="note">file not found in the folder</span>' if missing else ""
        media = (
            '<div class="media"><video controls playsinline preload="none" '
            f"{' '.join(attrs)}></video>{note}</div>"
        )
    elif status in PROBLEM_STATUSES or status == "done":
        code, msg, note = rec.get("fail_code"), rec.get("fail_msg"), rec.get("note")
        if status == "done":
            note = "no usable file path recorded"
        reason = " ".join(x for x in (_esc(code) if code else "", _esc(msg) if msg else "") if x)
        if note:
            reason = f"{reason}\n{_esc(note)}" if reason else _esc(note)
        media = (
            f'<div class="media problem {_cls(status)}"><span class="big">{_esc(status)}</span>'
            f'<p class="reason">{reason or "no reason given"}</p></div>'
        )
    else:
        note = rec.get("note")
        extra = f'<p class="reason">{_esc(note)}</p>' if note else ""
        media = (
            f'<div class="media waiting {_cls(status)}"><span class="big">'
            f"{_esc(status.replace('_', ' '))}</span>{extra}</div>"
        )

    facts: list[tuple[str, Any]] = [
        ("model", rec.get("model")),
        ("mode", mode),
        ("duration", f"{rec['duration']} s" if rec.get("duration") is not None else None),
        ("aspect ratio", rec.get("aspect_ratio")),
        ("cfg scale", rec.get("cfg_scale")),
        ("provider", rec.get("provider")),
        ("task id", rec.get("task_id")),
        ("generation", _seconds(rec.get("cost_time_ms"))),
        ("finished", rec.get("completed_at")),
        ("attempts", _attempts(rec.get("attempts"))),
    ]
    dl = "".join(
        f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in facts if v is not None and v != ""
    )
    meta = rec.get("meta") if isinstance(rec.get("meta"), dict) else {}
    if meta:
        pairs = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(grid.text(v))}</dd>" for k, v in meta.items())
        dl += f'</dl><dl class="metafacts">{pairs}'  # the job's variables, apart
    neg = rec.get("negative_prompt")
    neg_html = f'<p class="neg"><span class="lbl">negative: </span>{_esc(neg)}</p>' if neg else ""
    file_bits = []
    for clean, f in links:
        size = _size(f.get("bytes"))
        size_html = f" <span>{_esc(size)}</span>" if size else ""
        if clean is None:
            file_bits.append(f"<span>{_esc(f.get('path'))} (not linked: unsafe path)</span>")
        else:
            file_bits.append(
                f'<a href="{_esc(_href(clean, prefix))}">{_esc(clean.as_posix())}</a>{size_html}'
            )
    files_html = f'<p class="files">{" · ".join(file_bits)}</p>' if file_bits else ""
    return (
        f'<article class="card {_cls(status)}" data-status="{_esc(status)}" '
        f'data-mode="{_esc(mode or "")}" data-meta="{_esc(grid.meta_attr(meta))}">{media}'
        f'{gi.render(inputs.get(str(rec.get("id"))), prefix)}<div class="body">'
        f'<div class="title"><span class="id">{_esc(rec.get("id"))}</span>'
        f'<span class="badge {_cls(status)}">{_esc(status.replace("_", " "))}</span></div>'
        f'<p class="prompt">{_esc(rec.get("prompt") or "")}</p>{neg_html}'
        f"<dl>{dl}</dl>{files_html}</div></article>"
    )


def _attempts(attempts: Any) -> str | None:
    """Each task made for the job, when there was more than one: "2: PROCESSING_TIMEOUT,
    succeeded" (a transient failure resubmitted, then a success)."""
    if not isinstance(attempts, list) or len(attempts) < 2:
        return None
    words = [str(a.get("fail_code") or a.get("outcome")) for a in attempts if isinstance(a, dict)]
    return f"{len(words)}: " + ", ".join(words)


def render_gallery(
    records: Iterable[dict[str, Any]],
    *,
    title: str,
    output_dir: Path,
    posters: dict[str, str] | None = None,
    page_dir: Path | None = None,
    inputs: dict[str, list[gi.InputImage]] | None = None,
    links: Links | None = None,
) -> str:
    """The whole page as one string.

    `records` are `report.records()` dicts; their file paths are relative to `output_dir`.
    `posters` maps a video's relative path to its poster's relative path (both inside
    `output_dir`). `page_dir` is the folder the page will be saved in (default: `output_dir`);
    links are made relative to it. `inputs` maps a job id to its input images
    (`gallery_inputs.collect`). `links`: the videos of a bucket output, played through
    presigned links (the page says when they expire, and allows their origin)."""
    output_dir = Path(output_dir)
    prefix = _link_prefix(output_dir, page_dir)
    counts: Counter[str] = Counter()
    modes: set[str] = set()
    cards: list[str] = []
    kept: list[dict[str, Any]] = []
    for rec in records:
        kept.append({"meta": rec.get("meta")})
        status = str(rec.get("status") or "unknown")
        counts[status] += 1
        if rec.get("mode"):
            modes.add(str(rec["mode"]))
        urls = links.urls if links is not None else None
        cards.append(_card(rec, output_dir, posters or {}, prefix, inputs or {}, urls))

    total = sum(counts.values())
    order = [s for s in STATUS_ORDER if counts[s]] + sorted(
        s for s in counts if s not in STATUS_ORDER
    )
    chips = "".join(
        f'<li><button type="button" class="chip {_cls(s)}" data-status="{_esc(s)}" '
        f'aria-pressed="false">{_esc(s.replace("_", " "))}<b>{counts[s]}</b></button></li>'
        for s in order
    )
    status_opts = "".join(
        f'<option value="{_esc(s)}">{_esc(s.replace("_", " "))} ({counts[s]})</option>'
        for s in order
    )
    mode_opts = "".join(f'<option value="{_esc(m)}">{_esc(m)}</option>' for m in sorted(modes))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_esc(_csp(links))}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="batchgen">\n'
        f"<title>{_esc(title)}</title>\n"
        f"<style>{_CSS}</style>\n</head><body>\n"
        f'<header><h1>{_esc(title)}</h1>\n<ul class="counts" aria-label="jobs per status">'
        f'<li><span class="chip total">jobs<b>{total}</b></span></li>{chips}</ul>\n'
        '<div class="filters" role="search">'
        '<label>status <select id="f-status"><option value="">all</option>'
        f"{status_opts}</select></label> "
        '<label>mode <select id="f-mode"><option value="">all</option>'
        f"{mode_opts}</select></label> {grid.controls(grid.collect(kept))}"
        '<input id="f-text" type="search" placeholder="search prompts and ids" '
        'aria-label="search prompts and ids" autocomplete="off"> '
        f'<span id="shown" aria-live="polite">{total} of {total} shown</span></div>\n'
        f"{_expiry(links)}</header>\n"
        f'<main id="cards">\n{chr(10).join(cards)}\n</main>\n'
        '<div id="grid-wrap" hidden></div>\n'
        '<p id="none" hidden>No job matches these filters.</p>\n'
        f"<script>{_JS}</script>\n</body></html>\n"
    )


def _csp(links: Links | None) -> str:
    origin = links.origin if links is not None else None
    if not origin:
        return CSP
    return CSP.replace("media-src 'self' file:;", f"media-src 'self' file: {origin};")


def _expiry(links: Links | None) -> str:
    if links is None:
        return ""
    when = datetime.fromtimestamp(links.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f'<p class="expiry">Videos play from the bucket through presigned links that stop '
        f"working at {_esc(when)}; run <code>batchgen gallery</code> again for fresh ones.</p>\n"
    )


# -- posters ------------------------------------------------------------------------------------


def output_dir_of(store: st.Store) -> Path:
    """The output folder the run recorded, if it is there; else the state file's folder."""
    recorded = store.get_meta("output_dir")
    if recorded:
        path = Path(recorded)
        if not path.is_absolute():
            path = Path.cwd() / path
        if path.is_dir():
            return path
    return store.path.resolve().parent


def default_title(store: st.Store, output_dir: Path) -> str:
    manifest = store.get_meta("manifest")
    name = Path(manifest).name if manifest else Path(output_dir).resolve().name
    return f"batchgen gallery: {name}"


def write_gallery(
    store: st.Store,
    out_path: Path | None = None,
    *,
    title: str | None = None,
    posters: bool = True,
    output_dir: Path | None = None,
    links: Links | None = None,
) -> Path:
    """Render the gallery of `store` and atomically replace `out_path` (default
    `<output folder>/gallery.html`). Returns the path written.

    `output_dir` is the folder the records' file paths are relative to (default: as the run
    recorded it in the state file). `posters`: extract poster frames where ffmpeg exists.
    Local input images get thumbnails in `<output folder>/thumbs/`."""
    output_dir = Path(output_dir) if output_dir is not None else output_dir_of(store)
    out = Path(out_path) if out_path is not None else output_dir / DEFAULT_NAME
    if out.is_dir():
        out = out / DEFAULT_NAME
    poster_map = make_posters(report.records(store), output_dir) if posters else {}
    inputs = gi.collect(store.db, output_dir)
    page = render_gallery(
        report.records(store),
        title=title or default_title(store, output_dir),
        output_dir=output_dir,
        posters=poster_map,
        page_dir=out.resolve().parent,
        inputs=inputs,
        links=links,
    )
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".gallery-", suffix=".tmp", dir=out.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
        tmp = None
    except OSError as exc:
        raise BatchgenError(f"{out}: cannot write the gallery ({exc.strerror or exc})") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return out
