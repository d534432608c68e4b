"""Result URLs from the API must not reach the user's own network (SSRF guard)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import aiohttp
import pytest

from batchgen import runner
from batchgen import store as st
from batchgen.adapters.download.attempt import Downloader
from batchgen.adapters.netguard import PublicOnlyResolver
from batchgen.adapters.sinks.local import LocalSinks
from batchgen.core.urls import check_public_host, is_public_address
from batchgen.errors import UnsafeUrl
from batchgen.runner import execute, results_public_only
from batchgen.settings import RunOptions
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, mixed_jobs, options, prepare_state


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:93.184.216.34", True),
        ("not an address", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(address) is public


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.mp4",
        "https://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/a",
        "http://10.0.0.5/v.mp4",
        "http://[::ffff:192.168.0.1]/v.mp4",
        # spellings a proxy or resolver reads as an address (inet_aton's forms, a root dot)
        "http://2130706433/v.mp4",
        "http://127.1/v.mp4",
        "http://0x7f.0.0.1/v.mp4",
        "http://0X7F.1/v.mp4",
        "http://0177.0.0.1/v.mp4",
        "http://017700000001/v.mp4",
        "http://0x7f000001/v.mp4",
        "http://127.0.0.1./v.mp4",
        "http://10.0.0.1./v.mp4",
        "http://[::ffff:127.0.0.1]/v.mp4",
        "http://169.254.43518/latest",  # 169.254.169.254
        "http://0/v.mp4",
    ],
)
def test_private_ip_literals_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="private or local"):
        check_public_host(url)


def test_names_and_public_literals_pass_the_literal_check() -> None:
    check_public_host("https://r2.apixo.ai/video.mp4")
    check_public_host("http://93.184.216.34/video.mp4")
    check_public_host("http://1572395042/video.mp4")  # 93.184.216.34 as one number
    check_public_host("http://cdn.0x7f.example/video.mp4")  # a name with a number-like label
    check_public_host("http://1.2.3.4.5/video.mp4")  # five parts: a name, for the resolver
    check_public_host("http://08.1/video.mp4")  # not octal: a name, for the resolver


class _FixedResolver(aiohttp.abc.AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_resolver_drops_private_answers_and_refuses_when_none_is_left() -> None:
    mixed = PublicOnlyResolver(_FixedResolver("10.0.0.1", "93.184.216.34"))
    assert [r["host"] for r in await mixed.resolve("cdn.example", 443)] == ["93.184.216.34"]
    rebinding = PublicOnlyResolver(_FixedResolver("127.0.0.1"))
    with pytest.raises(OSError, match="private or local"):
        await rebinding.resolve("cdn.example", 443)


async def test_downloader_refuses_a_name_that_resolves_to_loopback(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        guarded = Downloader(session, sinks=LocalSinks(), public_only=True)
        with pytest.raises(UnsafeUrl, match="private or local"):
            await guarded.fetch("http://localhost:9/x.mp4", tmp_path / "x.mp4")
    assert not os.listdir(tmp_path)


async def test_the_default_follows_where_the_api_lives(tmp_path: Path, monkeypatch) -> None:
    def opts(base: str, allow: bool | None = None) -> RunOptions:
        return RunOptions.from_flat(
            tmp_path / "s.db", tmp_path, base_url=base, allow_private_result_hosts=allow
        )

    names = {
        "api.apixo.ai": ["104.18.1.1"],
        "sim": ["172.18.0.3"],
        "mixed": ["10.0.0.1", "8.8.8.8"],
    }

    async def addresses_of(host: str) -> list[str]:
        return names.get(host, [])

    monkeypatch.setattr(runner, "_addresses_of", addresses_of)
    assert await results_public_only(opts("https://api.apixo.ai/api/v1"))
    assert not await results_public_only(opts("http://127.0.0.1:8080/api/v1"))  # the simulator
    assert not await results_public_only(opts("http://localhost:8080/api/v1"))
    assert not await results_public_only(opts("http://[::1]:8080/api/v1"))
    assert not await results_public_only(opts("http://10.0.0.2/api/v1"))  # a proxy on the LAN
    # a container name on a private network: its results live there too
    assert not await results_public_only(opts("http://sim:8000/api/v1"))
    assert await results_public_only(opts("http://mixed/api/v1"))  # one public answer: guard on
    assert await results_public_only(opts("http://nowhere.invalid/api/v1"))  # unknown: guard on
    assert not await results_public_only(opts("https://api.apixo.ai/api/v1", allow=True))
    assert await results_public_only(opts("http://127.0.0.1:8080/api/v1", allow=False))


async def test_names_are_really_resolved_to_decide() -> None:
    assert await runner._addresses_of("localhost")  # /etc/hosts: no network needed
    assert await runner._addresses_of("no-such-host.invalid") == []  # never resolves (RFC 6761)


async def test_a_run_that_must_stay_public_refuses_loopback_results(tmp_path: Path) -> None:
    """The simulator serves its results on loopback: with the guard forced on, every job fails
    DOWNLOAD_REFUSED and nothing is fetched or written."""
    state = prepare_state(tmp_path, mixed_jobs(3))
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim:
        outcome = await execute(options(tmp_path, sim.base_url, allow_private_result_hosts=False))
        files_served = sum(sim.stats()["requests"].get("file", {}).values())
    assert outcome.exit_code == 1
    store = st.Store(state, readonly=True)
    codes = {r[0] for r in store.db.execute("SELECT fail_code FROM jobs")}
    store.close()
    assert codes == {"DOWNLOAD_REFUSED"}
    assert files_served == 0
    assert not [n for n in os.listdir(tmp_path / "out") if n.endswith(".mp4")]
