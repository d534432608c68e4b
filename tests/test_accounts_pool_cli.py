"""`--accounts FILE` on the command line: keys from a variable and from a key file, a key
written in the file refused unshown, and `resume` needing the same accounts (a clear error
naming the missing account, exit 2, the state file untouched) (issue 29)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, pace_args
from tests.opskit import counts, finish, spawn
from tests.test_accounts_pool import (
    KEY_A,
    KEY_B,
    accounts_file,
    polled_only_by_their_maker,
    two_keys,
)

MANIFEST = (
    "defaults:\n  mode: master-text-to-video\n  input:\n    duration: 5\n"
    '    aspect_ratio: "16:9"\njobs:\n'
    + "".join(f"  - id: clip-{i:02d}\n    prompt: a calm sea, take {i}\n" for i in range(8))
)


async def cli(*argv: str) -> tuple[int, str, str]:
    return await finish(await spawn([sys.executable, "-m", "batchgen", *argv]))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_resume_needs_the_same_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST)
    out = tmp_path / "out"
    state = out / "batchgen.db"
    both = accounts_file(tmp_path, monkeypatch)
    only_beta = tmp_path / "beta-only.yaml"
    only_beta.write_text("accounts:\n  - name: beta\n    key_file: beta.key\n")
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=5) as sim:
        two_keys(sim)
        code, _, err = await cli(
            "run", str(manifest), "--output", str(out), "--no-wait", "--accounts", str(both),
            *pace_args(sim.base_url),
        )  # fmt: skip
        assert code == 75, err  # tasks made, none collected yet: 3 per account, its cap
        assert counts(state)[st.IN_FLIGHT] == 6
        assert sim.keys.made_by("alpha") and sim.keys.made_by("beta")
        code, out_, _ = await cli("status", str(state))
        assert code == 0 and "account alpha:" in out_ and "account beta:" in out_
        before = digest(state)

        code, _, err = await cli("resume", str(state))
        assert code == 2, err
        assert "accounts alpha, beta" in err and "--accounts" in err
        code, _, err = await cli("resume", str(state), "--accounts", str(only_beta))
        assert code == 2, err
        assert "account alpha" in err and "beta" not in err.split("account alpha")[1][:40]
        assert digest(state) == before  # untouched

        code, _, err = await cli("resume", str(state), "--accounts", str(both))
        assert code == 0, err
        assert counts(state)[st.DONE] == 8
        polled_only_by_their_maker(sim)  # the resumed run polled each task with its maker's key
        for secret in (KEY, KEY_A, KEY_B):
            assert secret not in err


async def test_a_key_written_in_the_accounts_file_is_refused_unshown(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST)
    bad = tmp_path / "accounts.yaml"
    bad.write_text(f"accounts:\n  - name: alpha\n    key: {KEY_A}\n")
    code, out, err = await cli(
        "run", str(manifest), "--output", str(tmp_path / "out"), "--accounts", str(bad),
        "--base-url", "http://127.0.0.1:9/api/v1",
    )  # fmt: skip
    assert code == 2
    assert f"{bad}:3" in err and "never written in the accounts file" in err
    assert KEY_A not in err + out
    assert not (tmp_path / "out" / "batchgen.db").exists()  # nothing written


async def test_a_missing_key_names_its_account_and_place(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST)
    path = tmp_path / "accounts.yaml"
    path.write_text(
        "accounts:\n  - name: alpha\n    key_env: NO_SUCH_VARIABLE_SET_HERE\n"
        "  - name: beta\n    key_file: missing.key\n"
    )
    code, _, err = await cli(
        "run", str(manifest), "--output", str(tmp_path / "out"), "--accounts", str(path),
        "--base-url", "http://127.0.0.1:9/api/v1",
    )  # fmt: skip
    assert code == 2
    assert "account alpha: $NO_SUCH_VARIABLE_SET_HERE is not set" in err
