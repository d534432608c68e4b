"""Preflight inside a run: the real engine against the simulator, images on a scripted host."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.cli import main
from batchgen.runner import execute
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, body, options, prepare_state
from tests.imagekit import ImageHost, png


def _job(job_id: str, i: int, url: str) -> tuple[str, str, dict]:
    b = body(i)
    b["input"]["image_urls"] = [url]
    return job_id, "kling-2-1", b


async def test_a_bad_image_fails_its_job_before_anything_is_sent(tmp_path: Path) -> None:
    async with ImageHost() as host, Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim:
        good = host.file("good.png", png(200, 900))  # tall and small: two Kling warnings
        bad = host.file("page.jpg", b"<html>sign in</html>", ctype="image/jpeg")
        state = prepare_state(
            tmp_path, [_job("ok", 1, good), _job("ok-too", 2, good), _job("html", 3, bad)]
        )
        outcome = await execute(options(tmp_path, sim.base_url, preflight=True))
        submits = sim.stats()["tasks"]["total"]
        assert host.requests("good.png") == 1  # two jobs, one distinct URL

        store = st.Store(state, readonly=True)
        rows = {
            r[0]: r[1:]
            for r in store.db.execute("SELECT id, state, fail_code, fail_msg, note FROM jobs")
        }
        store.close()
        assert outcome.exit_code == 1
        assert submits == 2
        assert rows["html"][:2] == ("failed", "IMAGE_PREFLIGHT")
        assert "page.jpg" in rows["html"][2] and "an HTML page" in rows["html"][2]
        assert rows["ok"][0] == "done" and "Kling rule" in rows["ok"][3]

        # A later run (a new job with the same image) does not fetch it again.
        store = st.Store(state)
        store.jobs.sync([_job("ok-later", 4, good)])
        store.close()
        outcome = await execute(options(tmp_path, sim.base_url, preflight=True))
        assert host.requests("good.png") == 1
        assert sim.stats()["tasks"]["total"] == 3


@pytest.mark.parametrize("preflight", [False, None])  # None: off when the API is local
async def test_no_preflight_sends_the_url_unchecked(tmp_path: Path, preflight, caplog) -> None:
    caplog.set_level("INFO", logger="batchgen")
    async with ImageHost() as host, Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim:
        prepare_state(tmp_path, [_job("gif", 1, host.file("a.gif", b"GIF89a" + b"\0" * 50))])
        await execute(options(tmp_path, sim.base_url, preflight=preflight))
        assert host.requests() == 0
        assert sim.stats()["tasks"]["total"] == 1
    said = [r.getMessage() for r in caplog.records if "image preflight is off" in r.getMessage()]
    # Switched off for a local API: said once, with why and how to turn it on; asked for: quiet.
    assert len(said) == (1 if preflight is None else 0), said
    assert all("127.0.0.1" in m and "--preflight" in m for m in said)


async def test_validate_check_images_reports_every_bad_image_and_sends_nothing(
    tmp_path: Path, capsys
) -> None:
    async with ImageHost() as host:
        good = host.file("good.png", png(1200, 300))  # 4:1: a Kling warning
        manifest = tmp_path / "m.yaml"
        manifest.write_text(
            "jobs:\n"
            f"  - {{prompt: a, duration: 5, image_url: '{good}'}}\n"
            f"  - {{prompt: b, duration: 5, image_url: '{host.url('no.png')}'}}\n"
            f"  - {{prompt: c, duration: 5, image_url: '{good}'}}\n"
        )
        argv = ["validate", "--check-images", "--allow-private-result-hosts", str(manifest)]
        code = await asyncio.to_thread(main, argv)
        err = capsys.readouterr().err
        assert code == 2
        assert f"{manifest}:3: image_urls[0]: image {host.url('no.png')}: HTTP 404" in err
        assert "warning: " in err and "aspect ratio 1200:300" in err
        assert host.requests("good.png") == 1

        manifest.write_text(f"jobs:\n  - {{prompt: a, duration: 5, image_url: '{good}'}}\n")
        assert await asyncio.to_thread(main, argv) == 0
        assert "1 distinct URL(s) checked" in capsys.readouterr().err
        # Without the option, validate fetches nothing.
        assert await asyncio.to_thread(main, ["validate", str(manifest)]) == 0
        assert host.requests("good.png") == 2


@pytest.mark.parametrize("no_proxy_env", [False, True])
async def test_validate_check_images_follows_the_proxy_rule(
    tmp_path: Path, capsys, monkeypatch, no_proxy_env: bool
) -> None:
    """Images are checked through HTTP_PROXY as a run fetches them; `--no-proxy-env` connects
    directly (here: a name only the proxy knows, so the check fails, exit 2)."""
    from tests.proxykit import ForwardProxy

    async with (
        ImageHost() as host,
        ForwardProxy(hosts={"img.proxied.test": "127.0.0.1"}) as proxy,
    ):
        url = host.file("good.png", png(800, 800)).replace("127.0.0.1", "img.proxied.test")
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        manifest = tmp_path / "m.yaml"
        manifest.write_text(f"jobs:\n  - {{prompt: a, duration: 5, image_url: '{url}'}}\n")
        argv = ["validate", "--check-images", "--allow-private-result-hosts", str(manifest)]
        if no_proxy_env:
            argv.insert(1, "--no-proxy-env")
        code = await asyncio.to_thread(main, argv)
        err = capsys.readouterr().err
    if no_proxy_env:
        assert code == 2 and "img.proxied.test" in err
        assert proxy.log == []
    else:
        assert code == 0, err
        assert [p.method for p in proxy.log] and host.requests("good.png") == 1
