"""The accounts file (--accounts FILE): checked against schemas/accounts.schema.json with
every problem at file:line, a key never written in it (and never shown), keys read from a
variable or a key file relative to the file (issue 29)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.accounts.accountsfile import load_accounts, with_keys
from batchgen.errors import ManifestError, UsageError

SECRET = "sk-live-0123456789abcdef"


def write(tmp: Path, text: str) -> Path:
    path = tmp / "accounts.yaml"
    path.write_text(text)
    return path


def test_keys_come_from_a_variable_and_a_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHA_KEY", "sk-alpha-key-000")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "beta").write_text("sk-beta-key-000\n")
    path = write(
        tmp_path,
        "accounts:\n"
        "  - name: alpha\n    key_env: ALPHA_KEY\n    rate_limit: 600/60s\n"
        "    max_in_flight: 5\n    max_spend: 2.50\n"
        "  - name: beta\n    key_file: keys/beta\n    rate_limit: 30\n",
    )
    alpha, beta = with_keys(load_accounts(path, default_period_s=10.0))
    assert (alpha.key, beta.key) == ("sk-alpha-key-000", "sk-beta-key-000")
    assert alpha.rate == (600, 60.0) and beta.rate == (30, 10.0)
    assert alpha.max_in_flight == 5 and alpha.max_spend_micros == 2_500_000
    assert "sk-" not in repr(alpha) + repr(beta)  # the key is kept out of reprs
    assert beta.key_source == str(tmp_path / "keys" / "beta")


@pytest.mark.parametrize(
    "entry",
    [f"    key: {SECRET}\n", f"    key_env: {SECRET}\n", f"    key_file: {SECRET}\n"],
)
def test_a_key_written_in_the_file_is_refused_and_never_shown(tmp_path: Path, entry: str) -> None:
    path = write(tmp_path, "accounts:\n  - name: alpha\n" + entry)
    with pytest.raises(ManifestError) as err:
        load_accounts(path)
    assert f"{path}:3" in str(err.value) and "never written in the accounts file" in str(err.value)
    assert SECRET not in str(err.value)


def test_every_problem_is_placed_at_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "accounts:\n"
        "  - name: alpha\n    key_env: A\n    max_in_flight: 0\n    colour: red\n"
        "  - name: bad name\n",
    )
    with pytest.raises(ManifestError) as err:
        load_accounts(path)
    text = str(err.value)
    assert f"{path}:4: accounts[0].max_in_flight" in text
    assert f"{path}:5: accounts[0].colour: unknown field(s): colour" in text
    assert f"{path}:6: accounts[1]: give exactly one of key_env" in text


def test_one_name_or_one_key_twice_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "accounts:\n  - {name: a, key_env: K1}\n  - {name: a, key_env: K2}\n")
    with pytest.raises(ManifestError, match="named twice"):
        load_accounts(path)
    monkeypatch.setenv("K1", "sk-same-key-000")
    monkeypatch.setenv("K2", "sk-same-key-000")
    path = write(tmp_path, "accounts:\n  - {name: a, key_env: K1}\n  - {name: b, key_env: K2}\n")
    with pytest.raises(UsageError, match="same key") as err:
        with_keys(load_accounts(path))
    assert "sk-same" not in str(err.value)


def test_a_missing_key_names_the_account_and_the_place(tmp_path: Path) -> None:
    path = write(tmp_path, "accounts:\n  - {name: a, key_file: nowhere.key}\n")
    with pytest.raises(UsageError, match="account a: cannot read its key file"):
        with_keys(load_accounts(path))
