"""The unprivileged OS user the server programs run as when this process is root.

PostgreSQL refuses to run as root. When this process is root, the programs run
as an unprivileged OS user (``postgres`` by default, the user Debian's package
creates): the files we create for the server are handed to that user, and
every directory above the data directory and the programs must be traversable
by it. When this process is not root, there is no user to switch to
(``None`` below) and everything runs as ourselves.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from storekeeper.pgserver.errors import ServerError

__all__ = [
    "DEFAULT_ROOT_OS_USER",
    "OsUser",
    "check_reachable",
    "chown",
    "resolve_os_user",
    "run_as",
    "user_name",
    "write_new_file",
]

#: The OS user the server runs as when this process is root (Debian's package creates it).
DEFAULT_ROOT_OS_USER = "postgres"


@dataclasses.dataclass(frozen=True)
class OsUser:
    """The unprivileged OS user the server programs run as when we are root."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def resolve_os_user(os_user: str | None, datadir: Path) -> OsUser | None:
    """Return the user to switch to for the server in ``datadir``, or None to run the programs as ourselves."""
    euid = os.geteuid()
    if euid != 0:
        if os_user is not None and os_user != pwd.getpwuid(euid).pw_name:
            raise ServerError(
                f"Cannot run the PostgreSQL server in {datadir} as OS user {os_user!r}: switching users needs root.",
                hint="leave os_user unset to run it as yourself, or run as root",
                datadir=datadir,
            )
        return None
    name = os_user or DEFAULT_ROOT_OS_USER
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ServerError(
            f"OS user {name!r} does not exist; PostgreSQL refuses to run as root, so the server "
            f"in {datadir} needs an unprivileged user.",
            hint=f"create it (adduser --system --group {name}) or pass os_user=ANOTHER_USER",
            datadir=datadir,
        ) from None
    if entry.pw_uid == 0:
        raise ServerError(
            f"OS user {name!r} is root; PostgreSQL refuses to run as root.",
            hint="pass os_user= an unprivileged user (e.g. postgres)",
            datadir=datadir,
        )
    return OsUser(
        name=name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        groups=tuple(os.getgrouplist(name, entry.pw_gid)),
        home=entry.pw_dir,
    )


def user_name(uid: int) -> str:
    """Return the login name of ``uid``, or the number when it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def chown(path: Path, user: OsUser | None) -> None:
    """Hand a file or directory we created to ``user`` (nothing to do when None)."""
    if user is not None:
        os.chown(path, user.uid, user.gid)


def check_reachable(user: OsUser, datadir: Path, bindir: Path) -> None:
    """Fail clearly when ``user`` cannot traverse to the data directory or the server programs."""
    places = [(a, "data directory", datadir) for a in reversed(datadir.parents)]
    places += [(a, "server programs", bindir) for a in [*reversed(bindir.parents), bindir]]
    for ancestor, what, target in places:
        st = ancestor.stat()
        if st.st_uid == user.uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid in user.groups:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            owner = user_name(st.st_uid)
            where = (
                f"put the data directory where {user.name!r} can reach it (e.g. under /tmp or /var/lib; "
                "a root home such as /root is private)"
                if what == "data directory"
                else "install the programs where it can reach them (e.g. a virtual environment outside /root)"
            )
            raise ServerError(
                f"OS user {user.name!r} cannot reach the PostgreSQL {what} {target}: "
                f"{ancestor} (mode {stat.S_IMODE(st.st_mode):04o}, owner {owner}) is not traversable by it.",
                hint=f"{where}, or run: chmod o+x {ancestor}",
                datadir=datadir,
            )


def write_new_file(text: str, *, prefix: str, directory: Path | None, user: OsUser | None) -> Path:
    """Write ``text`` to a new 0600 file in ``directory`` (None: the system's temporary directory).

    The file is owned by ``user`` when given, and removed again if writing fails.
    """
    fd, name = tempfile.mkstemp(prefix=prefix, dir=directory)
    path = Path(name)
    try:
        if user is not None:
            os.fchown(fd, user.uid, user.gid)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def run_as(user: OsUser | None, args: Sequence[str | Path], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a server program as ``user`` (None: as ourselves), with a clean environment."""
    # PG* variables (PGDATA, PGPORT, PGPASSWORD, ...) would override what we
    # pass or leak into the server; drop them all.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    kwargs: dict[str, Any] = {}
    if user is not None:
        env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
        # extra_groups resets root's supplementary groups to the user's own.
        kwargs.update(user=user.uid, group=user.gid, extra_groups=list(user.groups))
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env=env,
        # Our cwd may be unreadable by the OS user (e.g. /root), which makes
        # initdb and postgres fail to resolve their own paths.
        cwd="/",
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
        **kwargs,
    )
