"""The documentation site builds in strict mode (a broken link, a missing page or a page left
out of the nav is an error), offline, and the strict build really does fail on a broken
link: the same check CI runs through `make test`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

def build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIXO_", "AWS_"))}
    env["NO_MKDOCS_2_WARNING"] = "1"  # Material's banner about MkDocs 2.0, not a build warning
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
         str(project / "mkdocs.yml"), "-d", str(site)],
        capture_output=True, text=True, timeout=240, env=env, cwd=project,
    )  # fmt: skip  (no --quiet: strict mode counts the warnings it logs, and --quiet drops them)


def copy_project(dest: Path) -> Path:
    """What the build reads: the config, docs/, the hook, and what the hook reads."""
    dest.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", dest / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", dest / "docs")
    (dest / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "docs_hooks.py", dest / "tools" / "docs_hooks.py")
    (dest / "bench").mkdir()
    shutil.copy(ROOT / "bench" / "report.py", dest / "bench" / "report.py")
    shutil.copytree(ROOT / "bench" / "results", dest / "bench" / "results")
    return dest


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = build(ROOT, out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def test_the_site_builds_strictly(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "reference" / "commands" / "index.html").is_file()
    assert (site / "search" / "search_index.json").is_file()


def test_the_site_fetches_nothing_from_the_internet(site: Path) -> None:
    """No web fonts, no CDN: every page's scripts, styles and fonts are the site's own."""
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        for host in ("fonts.googleapis.com", "fonts.gstatic.com", "cdn.jsdelivr.net", "unpkg.com"):
            assert host not in text, f"{page.relative_to(site)} loads from {host}"


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    assert build(project, tmp_path / "ok").returncode == 0, "the copy itself must build"
    page = project / "docs" / "getting-started.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    done = build(project, tmp_path / "broken")
    assert done.returncode != 0
    assert "no-such-page.md" in done.stdout + done.stderr


def test_a_page_missing_from_the_nav_fails_the_strict_build(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    (project / "docs" / "stray.md").write_text("# A page nobody links\n")
    done = build(project, tmp_path / "site")
    assert done.returncode != 0
    assert "stray.md" in done.stdout + done.stderr


def test_an_unknown_generated_block_fails_the_build(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    page = project / "docs" / "index.md"
    page.write_text(page.read_text() + "\n<!-- generated: no-such-table -->\n")
    done = build(project, tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-table" in done.stdout + done.stderr
