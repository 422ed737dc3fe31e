"""The server's configuration files: ``postgresql.auto.conf`` and ``pg_hba.conf``.

The settings that decide where the server listens (``listen_addresses``,
``port``, ``unix_socket_directories``) are kept in the data directory's
``postgresql.auto.conf``, the file ALTER SYSTEM writes and the server reads
last, so every later process agrees on them. ``pg_hba.conf`` gets one line
when the server listens beyond loopback (still with a password).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from storekeeper.pgserver.osuser import OsUser, write_new_file

__all__ = [
    "FAST_SETTINGS",
    "MAX_SOCKET_PATH",
    "connect_host",
    "connection_settings",
    "ensure_hba_for_host",
    "is_loopback",
    "parse_conf",
    "quote_conf",
    "read_auto_conf",
    "socket_dir_setting",
    "update_auto_conf",
    "write_server_file",
]

#: Settings that trade durability for speed; only sensible for throwaway servers.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}

#: Linux's ``sizeof(sun_path)`` minus the NUL; PostgreSQL refuses longer socket paths.
MAX_SOCKET_PATH = 107

_CONF_LINE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*(.*)")

_HBA_LINE = "host    all             all             all                     scram-sha-256"
_HBA_MARKER = "# storekeeper: listen_addresses is not loopback-only"


def parse_conf(text: str) -> list[tuple[str, str, str]]:
    """Parse postgresql.conf syntax into (name, value, original line) triples."""
    entries: list[tuple[str, str, str]] = []
    for line in text.splitlines():
        match = _CONF_LINE.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        raw = match.group(2)
        if raw.startswith("'"):
            value_chars: list[str] = []
            i = 1
            while i < len(raw):
                if raw[i] == "'" and raw[i + 1 : i + 2] == "'":
                    value_chars.append("'")
                    i += 2
                elif raw[i] == "\\" and i + 1 < len(raw):
                    value_chars.append(raw[i + 1])
                    i += 2
                elif raw[i] == "'":
                    break
                else:
                    value_chars.append(raw[i])
                    i += 1
            value = "".join(value_chars)
        else:
            value = raw.split("#", 1)[0].strip()
        entries.append((match.group(1).lower(), value, line))
    return entries


def quote_conf(value: str) -> str:
    """Escape ``value`` for a single-quoted postgresql.conf string."""
    return value.replace("\\", "\\\\").replace("'", "''")


def is_loopback(host: str) -> bool:
    """Return whether a listen_addresses value names loopback addresses only."""
    return all(h.strip() in ("127.0.0.1", "::1", "localhost") for h in host.split(","))


def connect_host(host: str) -> str:
    """Return an address clients can dial for a listen_addresses value."""
    first = host.split(",")[0].strip()
    if first in ("*", "0.0.0.0", ""):
        return "127.0.0.1"
    if first == "::":
        return "::1"
    return first


def socket_dir_setting(datadir: Path, port: int) -> str:
    """Return unix_socket_directories: the data directory, or '' if its path is too long."""
    if len(str(datadir / f".s.PGSQL.{port}")) > MAX_SOCKET_PATH:
        # The server would refuse to start; TCP alone is enough for us.
        return ""
    text = str(datadir)
    if any(c in text for c in ',"') or text != text.strip():
        # The setting is a comma-separated list; double quotes protect one entry.
        return '"' + text.replace('"', '""') + '"'
    return text


def connection_settings(datadir: Path, host: str, port: int) -> dict[str, str]:
    """Return the settings that decide where the server in ``datadir`` listens."""
    return {
        "listen_addresses": host,
        "port": str(port),
        "unix_socket_directories": socket_dir_setting(datadir, port),
    }


def read_auto_conf(datadir: Path) -> dict[str, str]:
    """Return the settings in ``datadir``'s postgresql.auto.conf ({} before init)."""
    try:
        text = (datadir / "postgresql.auto.conf").read_text(encoding="utf-8")
    except OSError:
        return {}
    return {key: value for key, value, _ in parse_conf(text)}


def update_auto_conf(datadir: Path, settings: Mapping[str, str], user: OsUser | None) -> None:
    """Set ``settings`` in ``datadir``'s postgresql.auto.conf, keeping every other line.

    This is the file ALTER SYSTEM writes (and pg_basebackup --write-recovery-conf
    edits), so the values are in the one place the server reads last. The file
    stays owned by the server's OS ``user``.
    """
    path = datadir / "postgresql.auto.conf"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    parsed = parse_conf(text)
    current = {key: value for key, value, _ in parsed}
    if all(current.get(key) == value for key, value in settings.items()):
        return
    replaced = {line for key, _, line in parsed if key in settings}
    lines = [line for line in text.splitlines() if line not in replaced]
    lines += [f"{key} = '{quote_conf(value)}'" for key, value in settings.items()]
    write_server_file(path, "\n".join(lines) + "\n", user)


def ensure_hba_for_host(datadir: Path, host: str, user: OsUser | None) -> None:
    """Let clients reach a non-loopback listen address ``host`` (still with a password)."""
    if is_loopback(host):
        return  # initdb's pg_hba.conf already allows 127.0.0.1 and ::1
    path = datadir / "pg_hba.conf"
    text = path.read_text(encoding="utf-8")
    if _HBA_MARKER not in text:
        write_server_file(path, text.rstrip("\n") + f"\n{_HBA_MARKER}\n{_HBA_LINE}\n", user)


def write_server_file(path: Path, text: str, user: OsUser | None) -> None:
    """Replace a file in the data directory atomically, owned by the server's OS ``user``."""
    new = write_new_file(text, prefix=f".{path.name}.", directory=path.parent, user=user)
    try:
        os.replace(new, path)
    except BaseException:
        new.unlink(missing_ok=True)
        raise
