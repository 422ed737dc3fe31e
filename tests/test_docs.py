"""The documentation site: its generated reference pages are current, and it builds with no warning."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

from tests.test_hints import command_lines, problems

ROOT = Path(__file__).resolve().parent.parent


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: Where a shell command starts: a line's start, or after ``&&``, ``;``, ``|`` or ``$(``.
COMMAND_START = re.compile(r"(?:^|&&|;|\||\$\()\s*(?:\S*/bin/)?(storekeeper\s.*)")
SHELL_FENCES = ("```bash", "```sh", "```console", "```shell")


def written_command_lines(text: str) -> list[str]:
    """Return the ``storekeeper ...`` command lines of a Markdown page: in its shell blocks and code spans."""
    spans: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fence = None if fence is not None else line.strip()
            continue
        if fence is None:
            spans += re.findall(r"`(storekeeper [^`]+)`", line)
        elif fence in SHELL_FENCES:
            spans += [m.group(1) for m in COMMAND_START.finditer(line.split(" #", 1)[0])]
    return [found for span in spans for found in command_lines(span)]


def written_pages() -> list[Path]:
    """Return the pages people write: the README and the docs site less its generated reference."""
    docs = sorted(p for p in (ROOT / "docs").rglob("*.md") if "reference" not in p.relative_to(ROOT / "docs").parts)
    return [ROOT / "README.md", *docs]


@pytest.mark.parametrize("page", written_pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_command_a_page_shows_is_a_real_command_with_real_flags(page: Path) -> None:
    lines = written_command_lines(page.read_text(encoding="utf-8"))
    bad = {line: problems(line) for line in lines if problems(line)}
    assert bad == {}, "\n".join(f"{line!r}: {'; '.join(p)}" for line, p in bad.items())


def test_the_page_scan_finds_commands_and_skips_code_that_is_not_shell() -> None:
    page = "```bash\ngit clone x storekeeper && cd storekeeper\n.venv/bin/storekeeper syncstores links  # sync\n```\n"
    page += "```python\nfrom storekeeper import AppBase\n```\nRun `storekeeper stores list APP` then.\n"
    assert written_command_lines(page) == ["storekeeper syncstores links", "storekeeper stores list APP"]
    assert problems("storekeeper stores list --nope")


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return _generator().pages()  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["cli.md", "config.md", "rest.md", "openapi.json"])
def test_generated_reference_page_is_current(generated: dict[str, str], name: str) -> None:
    page = ROOT / "docs" / "reference" / name
    stale = f"docs/reference/{name} is stale (the code changed): regenerate it with `python scripts/gen_docs.py`"
    assert page.exists(), stale
    assert page.read_text(encoding="utf-8") == generated[name], stale


def test_generated_pages_are_the_same_on_every_run(generated: dict[str, str]) -> None:
    assert _generator().pages() == generated


def test_cli_reference_lists_every_command_and_option(generated: dict[str, str]) -> None:
    cli = generated["cli.md"]
    for heading in ("## storekeeper syncstores", "## storekeeper stores create", "## storekeeper services test"):
        assert heading in cli
    create = cli.split("## storekeeper stores create", 1)[1].split("\n## ", 1)[0]
    for flag in ("--connection", "--spatial", "--initializer"):
        assert flag in create


def test_config_reference_lists_every_key_with_its_env_var(generated: dict[str, str]) -> None:
    from storekeeper.config import KEYS, env_var

    for key in KEYS:
        assert f"| `{key}` | `{env_var(key)}` |" in generated["config.md"]


def test_rest_reference_lists_the_portal_api_and_no_installed_app(generated: dict[str, str]) -> None:
    rest = generated["rest.md"]
    assert "### `POST /api/v1/auth/token`" in rest
    assert "/apps/links/" not in rest


def test_docs_site_builds_strict_with_no_warning(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "WARNING" not in done.stderr
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").exists()


@pytest.mark.parametrize("built", [True, False], ids=["site built", "no site"])
def test_portal_docs_page_links_to_the_sites_rest_pages_when_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built: bool
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starlette prefers the httpx2 fork for its TestClient; httpx works the same
        from fastapi.testclient import TestClient

    from storekeeper.config import load_config
    from storekeeper.portal import docs
    from storekeeper.portal.app import create_app

    site = tmp_path / "site"
    if built:
        (site / "reference" / "rest").mkdir(parents=True)
        (site / "reference" / "rest" / "index.html").write_text("<h1>REST API reference</h1>", encoding="utf-8")
    monkeypatch.setattr(docs, "SITE_DIR", site)
    monkeypatch.setenv("STOREKEEPER_HOME", str(tmp_path / "home"))
    client = TestClient(create_app(load_config()))  # no lifespan: the page needs no database
    page = client.get("/docs")
    assert page.status_code == 200
    assert ('href="/docs/site/reference/rest/"' in page.text) is built
    if built:
        assert "REST API reference" in client.get("/docs/site/reference/rest/").text


def test_readme_links_point_at_files_that_exist() -> None:
    """The README is read on its own (not built by MkDocs), so its links are checked here."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [t.split("#", 1)[0] for t in re.findall(r"\]\(([^)\s]+)\)", readme) if "://" not in t]
    assert "docs/reference/cli.md" in targets and "SECURITY.md" in targets and "CHANGELOG.md" in targets
    assert [t for t in targets if t and not (ROOT / t).exists()] == []


def test_readme_stays_short_and_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 220, "the README is a start; longer text belongs in docs/"
    assert lines[2:6] == ["```bash", lines[3], lines[4], "```"] and lines[3].startswith("make run ")
    assert lines[4].startswith("make test ")
