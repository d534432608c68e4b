"""The gallery page's style and script, and the Content-Security-Policy that pins them by
hash: the page runs only this script and loads media only from its own folder."""

from __future__ import annotations

import base64
import hashlib

from batchgen.ui import gallery_inputs as gi
from batchgen.ui.gallery_grid import GRID_CSS

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
    + GRID_CSS
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
            mode: card.getAttribute("data-mode") || "", text: text.toLowerCase(),
            meta: parseMeta(card.getAttribute("data-meta"))};
  });
  function parseMeta(q) {
    var out = {};
    if (!q) { return out; }
    var pairs = q.split("&");
    for (var i = 0; i < pairs.length; i++) {
      var at = pairs[i].indexOf("=");
      out[decodeURIComponent(pairs[i].slice(0, at))] = decodeURIComponent(pairs[i].slice(at + 1));
    }
    return out;
  }
  var metaSel = Array.prototype.slice.call(document.querySelectorAll("select.f-meta"));
  var gRow = document.getElementById("g-row");
  var gCol = document.getElementById("g-col");
  var wrap = document.getElementById("grid-wrap");
  var table = document.createElement("table");
  table.id = "grid";
  wrap.appendChild(table);
  var BAD = {failed: 1, expired: 1, ambiguous: 1, orphaned: 1};
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
      for (var k = 0; ok && k < metaSel.length; k++) {
        var want = metaSel[k].value;
        ok = !want || it.meta[metaSel[k].getAttribute("data-key")] === want;
      }
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
    layout();
  }

  // The grid: two variables as rows and columns, the shown cards in their cells.
  function cell(tag, text, cls) {
    var el = document.createElement(tag);
    el.textContent = text;
    if (cls) { el.className = cls; }
    return el;
  }
  function layout() {
    if (!gRow || !gCol) { return; }
    var r = gRow.value, c = gCol.value;
    while (table.firstChild) { table.removeChild(table.firstChild); }
    if (!r || !c || r === c) {
      for (var i = 0; i < items.length; i++) { main.appendChild(items[i].card); }
      wrap.hidden = true;
      main.hidden = false;
      return;
    }
    var rows = [], cols = [], at = {};
    for (var j = 0; j < items.length; j++) {
      var it = items[j];
      if (it.card.hidden) { continue; }
      var rv = r in it.meta ? it.meta[r] : "(none)", cv = c in it.meta ? it.meta[c] : "(none)";
      if (rows.indexOf(rv) < 0) { rows.push(rv); }
      if (cols.indexOf(cv) < 0) { cols.push(cv); }
      var key = JSON.stringify([rv, cv]);
      (at[key] = at[key] || []).push(it);
    }
    var head = document.createElement("tr");
    head.appendChild(cell("th", r + " \u2193  " + c + " \u2192"));
    for (var h = 0; h < cols.length; h++) { head.appendChild(cell("th", cols[h])); }
    var thead = document.createElement("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    var body = document.createElement("tbody");
    for (var y = 0; y < rows.length; y++) {
      var tr = document.createElement("tr");
      tr.appendChild(cell("th", rows[y]));
      for (var x = 0; x < cols.length; x++) {
        var here = at[JSON.stringify([rows[y], cols[x]])] || [];
        if (!here.length) { tr.appendChild(cell("td", "no job", "empty")); continue; }
        var td = cell("td", "", "full");
        var bad = true;
        for (var q = 0; q < here.length; q++) {
          td.appendChild(here[q].card);
          bad = bad && BAD[here[q].status] === 1;
        }
        if (bad) { td.className = "bad"; }
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    table.appendChild(body);
    main.hidden = true;
    wrap.hidden = false;
  }
  var timer = 0;
  fStatus.addEventListener("change", apply);
  fMode.addEventListener("change", apply);
  for (var ms = 0; ms < metaSel.length; ms++) { metaSel[ms].addEventListener("change", apply); }
  if (gRow && gCol) {
    gRow.addEventListener("change", layout);
    gCol.addEventListener("change", layout);
  }
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
  document.addEventListener("mouseover", function (ev) {
    var v = ev.target;
    if (v.tagName !== "VIDEO" || !v.paused || !v.getAttribute("data-src")) { return; }
    load(v);
    v.muted = true;
    v.setAttribute("data-hover", "1");
    var p = v.play();
    if (p && p.catch) { p.catch(function () {}); }
  });
  document.addEventListener("mouseout", function (ev) {
    var v = ev.target;
    if (v.tagName !== "VIDEO" || !v.getAttribute("data-hover")) { return; }
    v.removeAttribute("data-hover");
    if (v.muted) { v.pause(); }
  });
  document.addEventListener("error", function (ev) {
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
