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

import base64
import contextlib
import hashlib
import html
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from batchgen import store as st
from batchgen.errors import BatchgenError
from batchgen.ui import gallery_inputs as gi
from batchgen.ui import report

DEFAULT_NAME = "gallery.html"
POSTER_DIR = "posters"

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

_CSS = (
    """
:root{color-scheme:light dark;--bg:#f4f5f7;--fg:#1d2330;--muted:#5d6675;--card:#fff;
--line:#d9dde4;--done:#1f7a3d;--failed:#b42318;--expired:#9a5b00;--ambiguous:#7a3fb0;
--other:#4a5568}
@media (prefers-color-scheme:dark){:root{--bg:#15181d;--fg:#e6e8eb;--muted:#9aa3b1;
--card:#1f242b;--line:#323943;--done:#4cc07a;--failed:#ff7b6e;--expired:#e0a546;
--ambiguous:#c39bf0;--other:#a0aec0}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:var(--bg);color:var(--fg)}
header{position:sticky;top:0;z-index:2;background:var(--bg);border-bottom:1px solid var(--line);
padding:12px 20px}
h1{font-size:18px;margin:0 0 8px;overflow-wrap:anywhere}
.counts{display:flex;flex-wrap:wrap;gap:6px;margin:0 0 8px;padding:0;list-style:none}
.chip{font:inherit;border:1px solid var(--line);background:var(--card);color:var(--fg);
border-radius:999px;padding:2px 10px;cursor:pointer}
.chip b{margin-left:4px}
.chip[aria-pressed=true]{outline:2px solid currentColor}
.filters{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
.filters select,.filters input{font:inherit;padding:4px 6px;border:1px solid var(--line);
border-radius:6px;background:var(--card);color:var(--fg)}
.filters input{flex:1 1 240px;min-width:160px}
#shown{color:var(--muted)}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(290px,1fr));gap:14px;
padding:16px 20px}
.card{display:flex;flex-direction:column;background:var(--card);border:1px solid var(--line);
border-radius:10px;overflow:hidden;content-visibility:auto;contain-intrinsic-size:auto 440px}
.card[hidden]{display:none}
.media{aspect-ratio:16/9;background:#0d0f12;display:flex;align-items:center;
justify-content:center;position:relative}
.media video{position:absolute;inset:0;width:100%;height:100%;object-fit:contain;
background:#0d0f12}
.media.problem,.media.waiting{flex-direction:column;padding:12px;text-align:center;
color:#f3f4f6;overflow:auto}
.media.problem{background:#3a1513}
.media.s-expired{background:#3a2a10}
.media.s-ambiguous,.media.s-orphaned{background:#2a1a3a}
.media.waiting{background:#262b33}
.media .big{font-size:18px;font-weight:600;text-transform:uppercase;letter-spacing:.04em}
.media .reason{margin:6px 0 0;overflow-wrap:anywhere;white-space:pre-wrap}
.media .note{position:absolute;left:6px;bottom:6px;right:6px;font-size:12px;
background:rgba(0,0,0,.7);color:#fff;padding:2px 6px;border-radius:4px}
.body{padding:10px 12px 12px;display:flex;flex-direction:column;gap:6px}
.title{display:flex;gap:8px;align-items:baseline;justify-content:space-between}
.id{font-weight:600;overflow-wrap:anywhere;font-family:ui-monospace,Menlo,Consolas,monospace}
.badge{font-size:12px;font-weight:600;text-transform:uppercase;color:var(--other)}
.badge.s-done{color:var(--done)}.badge.s-failed{color:var(--failed)}
.badge.s-expired{color:var(--expired)}
.badge.s-ambiguous,.badge.s-orphaned{color:var(--ambiguous)}
.prompt,.neg{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
.neg{color:var(--muted)}
.neg .lbl,dt{color:var(--muted)}
dl{display:grid;grid-template-columns:auto 1fr;gap:1px 10px;margin:0;font-size:12.5px}
dt{white-space:nowrap}
dd{margin:0;overflow-wrap:anywhere}
.files{margin:0;font-size:12.5px;overflow-wrap:anywhere}
.files a{color:inherit}
#none{padding:40px 20px;text-align:center;color:var(--muted)}
"""
    + gi.CSS
)

# Constant: no job data ever goes in here (so its CSP hash is fixed).
_JS = """
(function () {
  "use strict";
  var main = document.getElementById("cards");
  var cards = Array.prototype.slice.call(main.querySelectorAll(".card"));
  var items = cards.map(function (card) {
    var t = card.querySelectorAll(".id, .prompt, .neg");
    var text = "";
    for (var i = 0; i < t.length; i++) { text += " " + t[i].textContent; }
    return {card: card, status: card.getAttribute("data-status") || "",
            mode: card.getAttribute("data-mode") || "", text: text.toLowerCase()};
  });
  var fStatus = document.getElementById("f-status");
  var fMode = document.getElementById("f-mode");
  var fText = document.getElementById("f-text");
  var shown = document.getElementById("shown");
  var none = document.getElementById("none");
  var chips = document.querySelectorAll(".chip");

  function apply() {
    var s = fStatus.value, m = fMode.value;
    var words = fText.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var n = 0;
    for (var i = 0; i < items.length; i++) {
      var it = items[i];
      var ok = (!s || it.status === s) && (!m || it.mode === m);
      for (var w = 0; ok && w < words.length; w++) { ok = it.text.indexOf(words[w]) !== -1; }
      if (it.card.hidden === ok) { it.card.hidden = !ok; }
      if (ok) { n++; }
    }
    shown.textContent = n + " of " + items.length + " shown";
    none.hidden = n !== 0;
    for (var c = 0; c < chips.length; c++) {
      var cs = chips[c].getAttribute("data-status");
      chips[c].setAttribute("aria-pressed", String(cs === s));
    }
  }
  var timer = 0;
  fStatus.addEventListener("change", apply);
  fMode.addEventListener("change", apply);
  fText.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(apply, items.length > 1000 ? 120 : 0);
  });
  for (var c = 0; c < chips.length; c++) {
    chips[c].addEventListener("click", function (ev) {
      var cs = ev.currentTarget.getAttribute("data-status");
      fStatus.value = fStatus.value === cs ? "" : cs;
      apply();
    });
  }

  function load(v) {
    if (!v.getAttribute("src")) {
      var p = v.getAttribute("data-poster");
      if (p && !v.getAttribute("poster")) { v.setAttribute("poster", p); }
      v.preload = "metadata";
      v.setAttribute("src", v.getAttribute("data-src"));
    }
  }
  function unload(v) {
    if (v.getAttribute("src") && v.paused) {
      v.removeAttribute("src");
      v.preload = "none";
      v.load();
    }
  }
  var videos = main.querySelectorAll("video[data-src]");
  if ("IntersectionObserver" in window) {
    var io = new IntersectionObserver(function (entries) {
      for (var i = 0; i < entries.length; i++) {
        var v = entries[i].target;
        if (entries[i].isIntersecting) { load(v); } else { unload(v); }
      }
    }, {rootMargin: "800px 0px"});
    for (var i = 0; i < videos.length; i++) { io.observe(videos[i]); }
  } else {
    for (var j = 0; j < videos.length; j++) { load(videos[j]); }
  }

  // Muted preview on hover; a video the viewer unmuted keeps playing when the pointer leaves.
  main.addEventListener("mouseover", function (ev) {
    var v = ev.target;
    if (v.tagName !== "VIDEO" || !v.paused || !v.getAttribute("data-src")) { return; }
    load(v);
    v.muted = true;
    v.setAttribute("data-hover", "1");
    var p = v.play();
    if (p && p.catch) { p.catch(function () {}); }
  });
  main.addEventListener("mouseout", function (ev) {
    var v = ev.target;
    if (v.tagName !== "VIDEO" || !v.getAttribute("data-hover")) { return; }
    v.removeAttribute("data-hover");
    if (v.muted) { v.pause(); }
  });
  main.addEventListener("error", function (ev) {
    var v = ev.target;
    if (v.tagName !== "VIDEO" || !v.getAttribute("src")) { return; }
    var box = v.parentNode;
    if (box.querySelector(".note")) { return; }
    var note = document.createElement("span");
    note.className = "note";
    note.textContent = "cannot play " + v.getAttribute("data-src");
    box.appendChild(note);
  }, true);
  apply();
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


SCRIPT_HASH = _csp_hash(_JS)
STYLE_HASH = _csp_hash(_CSS)

# No default sources at all; media and posters from the page's own folder only (`file:` for a
# page opened from disk, whose origin is opaque, `'self'` for one served over HTTP).
CSP = (
    "default-src 'none'; "
    f"script-src {SCRIPT_HASH}; "
    f"style-src {STYLE_HASH}; "
    "media-src 'self' file:; "
    "img-src 'self' file:; "
    "base-uri 'none'; form-action 'none'"
)


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def safe_relpath(path: Any, output_dir: Path | None = None) -> PurePosixPath | None:
    """A record's file path as a clean relative path inside the output folder, or None.

    Refused: non-strings, empty, absolute (POSIX or Windows, drive or UNC), any `..` part,
    backslashes, control characters, and (when `output_dir` is given) a path whose symlinks
    lead outside the folder."""
    if not isinstance(path, str) or not path or "\\" in path:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        return None
    posix = PurePosixPath(path)
    win = PureWindowsPath(path)
    if posix.is_absolute() or win.drive or win.root or win.anchor:
        return None
    parts = [p for p in posix.parts if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    clean = PurePosixPath(*parts)
    if output_dir is not None:
        base = Path(output_dir).resolve()
        try:
            target = base.joinpath(*clean.parts).resolve()
        except (OSError, RuntimeError):
            return None
        if not target.is_relative_to(base) or target == base:
            return None
    return clean


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
    if status == "done" and video is not None:
        attrs = [f'data-src="{_esc(_href(video, prefix))}"']
        poster = posters.get(video.as_posix())
        clean_poster = safe_relpath(poster, output_dir) if poster else None
        if clean_poster is not None:
            attrs.append(f'data-poster="{_esc(_href(clean_poster, prefix))}"')
        missing = not Path(output_dir).joinpath(*video.parts).is_file()
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
        f'data-mode="{_esc(mode or "")}">{media}'
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
) -> str:
    """The whole page as one string.

    `records` are `report.records()` dicts; their file paths are relative to `output_dir`.
    `posters` maps a video's relative path to its poster's relative path (both inside
    `output_dir`). `page_dir` is the folder the page will be saved in (default: `output_dir`);
    links are made relative to it. `inputs` maps a job id to its input images
    (`gallery_inputs.collect`)."""
    output_dir = Path(output_dir)
    prefix = _link_prefix(output_dir, page_dir)
    counts: Counter[str] = Counter()
    modes: set[str] = set()
    cards: list[str] = []
    for rec in records:
        status = str(rec.get("status") or "unknown")
        counts[status] += 1
        if rec.get("mode"):
            modes.add(str(rec["mode"]))
        cards.append(_card(rec, output_dir, posters or {}, prefix, inputs or {}))

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
        f'<meta http-equiv="Content-Security-Policy" content="{_esc(CSP)}">\n'
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
        f"{mode_opts}</select></label> "
        '<input id="f-text" type="search" placeholder="search prompts and ids" '
        'aria-label="search prompts and ids" autocomplete="off"> '
        f'<span id="shown" aria-live="polite">{total} of {total} shown</span></div>\n'
        "</header>\n"
        f'<main id="cards">\n{chr(10).join(cards)}\n</main>\n'
        '<p id="none" hidden>No job matches these filters.</p>\n'
        f"<script>{_JS}</script>\n</body></html>\n"
    )


# -- posters ------------------------------------------------------------------------------------


def _poster_name(clean: PurePosixPath, sha: Any) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", clean.with_suffix("").as_posix()).strip("._")[:80]
    tag = (
        sha[:8]
        if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{8,}", sha)
        else (hashlib.sha256(clean.as_posix().encode()).hexdigest()[:8])
    )
    return f"{stem or 'video'}-{tag}.jpg"


def _extract_frame(ffmpeg: str, video: Path, poster: Path) -> bool:
    if poster.is_file() and poster.stat().st_size > 0:
        with contextlib.suppress(OSError):
            if poster.stat().st_mtime_ns >= video.stat().st_mtime_ns:
                return True
    tmp = poster.with_name(f".{poster.name}.{os.getpid()}.tmp.jpg")
    try:
        for at in ("1", "0"):  # a second in is more telling than the first frame
            cmd = [
                ffmpeg,
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-ss",
                at,
                "-i",
                str(video),
                "-frames:v",
                "1",
                "-vf",
                "scale='min(640,iw)':-2",
                "-q:v",
                "4",
                str(tmp),
            ]
            done = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
            if done.returncode == 0 and tmp.is_file() and tmp.stat().st_size > 0:
                os.replace(tmp, poster)
                return True
        return False
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def make_posters(
    records: Iterable[dict[str, Any]],
    output_dir: Path,
    *,
    ffmpeg: str | None = None,
    workers: int | None = None,
) -> dict[str, str]:
    """One JPEG frame per done video in `output_dir/posters/`, where ffmpeg is available.

    Returns {video relative path: poster relative path}; any failure just leaves that video
    without a poster (and no ffmpeg means no posters at all). Posters newer than their video
    are reused."""
    ffmpeg = ffmpeg or shutil.which("ffmpeg")
    if not ffmpeg:
        return {}
    output_dir = Path(output_dir)
    todo: list[tuple[str, Path, str]] = []
    for rec in records:
        if rec.get("status") != "done" or not isinstance(rec.get("files"), list):
            continue
        for f in rec["files"][:1]:
            clean = safe_relpath(f.get("path") if isinstance(f, dict) else None, output_dir)
            if clean is None:
                continue
            video = output_dir.joinpath(*clean.parts)
            if video.is_file():
                name = _poster_name(clean, f.get("sha256"))
                todo.append((clean.as_posix(), video, name))
    if not todo:
        return {}
    pdir = output_dir / POSTER_DIR
    try:
        pdir.mkdir(exist_ok=True)
    except OSError:
        return {}
    workers = workers or max(1, min(4, os.cpu_count() or 1))

    def one(item: tuple[str, Path, str]) -> tuple[str, str] | None:
        rel, video, name = item
        ok = _extract_frame(ffmpeg, video, pdir / name)
        return (rel, f"{POSTER_DIR}/{name}") if ok else None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(r for r in pool.map(one, todo) if r is not None)


# -- the file -----------------------------------------------------------------------------------


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
