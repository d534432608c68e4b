"""File names from templates, the output-folder jail, and which URLs may be fetched."""

from __future__ import annotations

import os
from pathlib import Path

import multidict
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batchgen.adapters.paths import render_filename, safe_output_path
from batchgen.core.urls import check_url
from batchgen.errors import UnsafeUrl

FIXTURE_OK = [HealthCheck.function_scoped_fixture]


def render(template="{id}.mp4", *, job_id="clip", index=0, task_id="task_1", mode="std", n=1):
    return render_filename(
        template,
        job_id=job_id,
        index=index,
        task_id=task_id,
        mode=mode,
        n_results=n,
        job_index=7,
    )


# ---- render_filename ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "index", "n", "expected"),
    [
        ("{id}.mp4", 0, 1, "clip.mp4"),
        ("{id}.mp4", 0, 3, "clip.mp4"),
        ("{id}.mp4", 1, 3, "clip-2.mp4"),
        ("{id}.mp4", 2, 3, "clip-3.mp4"),
        ("{id}_{index}.mp4", 0, 2, "clip_7.mp4"),
        ("{id}_{index}.mp4", 1, 2, "clip_7-2.mp4"),
        ("{index:03d}-{id}.mp4", 0, 1, "007-clip.mp4"),
        ("{index:4}-{id}.mp4", 0, 1, "   7-clip.mp4"),
        ("{mode}/{task_id}.mp4", 1, 2, "std/task_1-2.mp4"),
        ("{id}", 1, 2, "clip-2"),
        ("{id}.final.MP4", 1, 2, "clip.final-2.MP4"),
        ("{{{id}}}.mp4", 0, 1, "{clip}.mp4"),
    ],
)
def test_render_filename(template, index, n, expected):
    assert render(template, index=index, n=n) == expected


def test_a_dot_in_a_value_is_not_taken_for_the_extension():
    assert render("{id}", job_id="v1.2", index=1, n=2) == "v1.2-2"
    assert render("{id}.mp4", job_id="v1.2", index=1, n=2) == "v1.2-2.mp4"


def test_values_cannot_add_folders():
    assert render("{id}.mp4", job_id="../../etc/x") == ".._.._etc_x.mp4"
    assert render("{id}.mp4", job_id="a\\b") == "a_b.mp4"


@pytest.mark.parametrize(
    "template", ["{name}.mp4", "{id.__class__}.mp4", "{id!r}", "{0}", "{", "}"]
)
def test_unknown_placeholders_are_refused(template):
    with pytest.raises(ValueError):
        render(template)


def test_task_id_needed_but_missing():
    with pytest.raises(ValueError, match="task id"):
        render("{task_id}.mp4", task_id=None)
    assert render("{id}.mp4", task_id=None) == "clip.mp4"


@pytest.mark.parametrize(("index", "n"), [(-1, 1), (1, 1), (0, 0)])
def test_index_out_of_range(index, n):
    with pytest.raises(ValueError):
        render(index=index, n=n)


@given(n=st.integers(1, 30))
def test_names_of_one_job_never_collide(n):
    names = {render(index=i, n=n) for i in range(n)}
    assert len(names) == n


# ---- safe_output_path -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("a.mp4", "a.mp4"),
        ("sub/a.mp4", "sub/a.mp4"),
        ("../../etc/passwd", "__/__/etc/passwd"),
        ("/etc/passwd", "etc/passwd"),
        ("..\\..\\win.ini", "__/__/win.ini"),
        ("./a/./b.mp4", "a/b.mp4"),
        ("a//b.mp4", "a/b.mp4"),
        (".hidden.mp4", "_hidden.mp4"),
        ("-rf.mp4", "_rf.mp4"),
        ("..mp4", "__mp4"),
        ("a\x00b\nc.mp4", "a_b_c.mp4"),
        ("evil\u202e4pm.exe", "evil_4pm.exe"),
        ("CON", "_CON"),
        ("nul.mp4", "_nul.mp4"),
        ("com1.tar.gz", "_com1.tar.gz"),
        ("LPT9", "_LPT9"),
        ("console.mp4", "console.mp4"),
        ("a<b>c:d|e?f*.mp4", "a_b_c_d_e_f_.mp4"),
        ("trailing. . .", "trailing"),
        ("C:\\x.mp4", "C_/x.mp4"),
    ],
)
def test_sanitizing(tmp_path, relative, expected):
    assert safe_output_path(tmp_path, relative) == tmp_path / expected


@pytest.mark.parametrize("relative", ["", "/", ".", "./", "//", "\\"])
def test_empty_names_are_refused(tmp_path, relative):
    with pytest.raises(ValueError):
        safe_output_path(tmp_path, relative)


def test_long_components_are_cut_to_255_bytes_keeping_the_extension(tmp_path):
    out = safe_output_path(tmp_path, "é" * 300 + "/" + "é" * 300 + ".mp4")
    folder, name = out.parent.name, out.name
    assert len(folder.encode()) <= 255
    assert name.endswith(".mp4")
    assert len((name + ".part.json").encode()) <= 255  # room for the download's side files
    out.parent.mkdir()
    (out.parent / (name + ".part.json")).write_bytes(b"")  # the file system agrees


def test_a_symlink_inside_the_output_folder_cannot_lead_out(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere)
    with pytest.raises(ValueError, match="outside"):
        safe_output_path(out, "link/a.mp4")
    assert safe_output_path(out, "a.mp4") == out / "a.mp4"
    (out / "b.mp4").symlink_to(elsewhere / "b.mp4")  # a planted final name, too
    with pytest.raises(ValueError, match="outside"):
        safe_output_path(out, "b.mp4")


def test_an_output_folder_reached_through_a_symlink_is_fine(tmp_path):
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)
    assert safe_output_path(link, "a.mp4") == link / "a.mp4"
    assert safe_output_path(link, "sub/a.mp4") == link / "sub" / "a.mp4"


def test_relative_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert safe_output_path(Path("out"), "../x.mp4") == Path("out/__/x.mp4")


@settings(max_examples=300, suppress_health_check=FIXTURE_OK)
@given(job_id=st.text(max_size=300), index=st.integers(0, 3))
@example(job_id="..", index=0)
@example(job_id="../" * 40, index=1)
@example(job_id="/", index=0)
@example(job_id="\x00", index=0)
@example(job_id="CON", index=0)
def test_any_id_stays_inside_and_is_a_valid_name(tmp_path, job_id, index):
    name = render("{id}.mp4", job_id=job_id, index=index, n=4)
    path = safe_output_path(tmp_path, name)
    assert path.resolve().is_relative_to(tmp_path.resolve())
    assert path.parent == tmp_path  # an id never makes folders
    assert not path.name.startswith((".", "-"))
    assert len((path.name + ".part.json").encode()) <= 255
    # the name can really be created (and removed) on this file system
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    os.close(fd)
    path.unlink()


@settings(max_examples=300, suppress_health_check=FIXTURE_OK)
@given(relative=st.text(alphabet=st.sampled_from("./\\.a-\x00 é:"), max_size=40) | st.text())
def test_any_relative_path_stays_inside(tmp_path, relative):
    try:
        path = safe_output_path(tmp_path, relative)
    except ValueError:
        return
    assert path.resolve().is_relative_to(tmp_path.resolve())
    assert path.resolve() != tmp_path.resolve()
    for part in path.relative_to(tmp_path).parts:
        assert part not in ("..", ".") and not part.startswith((".", "-"))
        assert "\x00" not in part and len(part.encode()) <= 255


# ---- check_url ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://r2.apixo.ai/video.mp4",
        "http://127.0.0.1:8080/f/a.mp4?X-Amz-Signature=abc&x=1",
        "HTTPS://CDN.example.com/a.mp4",
        "http://[::1]:9000/a.mp4",
        "https://bücher.example/a.mp4",
    ],
)
def test_good_urls(url):
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a.mp4",
        "javascript:alert(1)",
        "data:video/mp4;base64,AAAA",
        "gopher://example.com/",
        "//example.com/a.mp4",
        "/relative/a.mp4",
        "",
        "https://user:pass@example.com/a.mp4",
        "https://user@example.com/a.mp4",
        "https://:@example.com/a.mp4",
        "http://example.com\\@evil.com/a.mp4",
        "http://example.com /a.mp4",
        "http://example.com/a\n.mp4",
        "http://example.com/\x00",
        "http:///a.mp4",
        "http://example.com:99999/",
        "http://example.com:port/",
        "https://example.com/" + "a" * 5000,
    ],
)
def test_unsafe_urls(url):
    with pytest.raises(UnsafeUrl):
        check_url(url)


def test_non_string_url():
    with pytest.raises(UnsafeUrl):
        check_url(None)  # type: ignore[arg-type]


def test_messages_do_not_echo_credentials():
    with pytest.raises(UnsafeUrl) as info:
        check_url("https://alice:hunter2@example.com/a.mp4?sig=s3cret")
    assert "hunter2" not in str(info.value) and "s3cret" not in str(info.value)


@given(st.text(max_size=200))
def test_check_url_only_raises_unsafe_url(text):
    try:
        out = check_url(text)
    except UnsafeUrl:
        return
    assert out.lower().startswith(("http://", "https://"))


def test_describe_error_keeps_no_signed_query() -> None:
    """aiohttp's errors name the request's full URL; a signed result URL's query is a secret
    and must not reach a message, a log or the state file."""
    import aiohttp
    import yarl

    from batchgen.core.urls import describe_error

    signed = "https://cdn.example.com/v/1.mp4?X-Amz-Signature=SECRETSIG&token=SECRET2"
    info = aiohttp.RequestInfo(
        yarl.URL(signed),
        "GET",
        multidict.CIMultiDictProxy(multidict.CIMultiDict()),
        yarl.URL(signed),
    )
    errors = [
        aiohttp.InvalidURL(signed),
        aiohttp.ClientResponseError(info, (), status=403, message="Forbidden"),
        aiohttp.TooManyRedirects(info, ()),
        ValueError(f"odd: '{signed}' and {signed})"),
    ]
    for exc in errors:
        text = describe_error(exc)
        assert "SECRET" not in text, text
        assert "cdn.example.com/v/1.mp4" in text or type(exc).__name__ in text
    assert describe_error(ConnectionResetError(104, "reset")).startswith("ConnectionResetError")
