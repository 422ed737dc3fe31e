"""The server's lifecycle: :class:`LocalServer` (init, start, stop, status, destroy, temporary).

What it sets up:

* password authentication (scram-sha-256) for TCP *and* Unix-socket
  connections, so the server behaves like a real service;
* the server listens on ``host`` (127.0.0.1 by default) and a port chosen at
  :meth:`LocalServer.init` time (a free one unless given), kept in the data
  directory's ``postgresql.auto.conf`` so every later process agrees on it
  (see :mod:`storekeeper.pgserver.conf`);
* its Unix socket lives in the data directory, not in ``/var/run/postgresql``,
  so it never clashes with a system server;
* the server log is ``<datadir>/server.log``.

The password never appears in a command line or a log: ``initdb`` reads it from
a 0600 file that is removed right after.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy.engine import URL

from storekeeper import ports
from storekeeper.pgserver import binaries, conf, osuser
from storekeeper.pgserver.binaries import DEFAULT_SEARCH_ROOT, INSTALL_HINT
from storekeeper.pgserver.errors import ServerError
from storekeeper.retry import retry

__all__ = ["LocalServer", "ServerStatus"]

_STOP_MODES = ("smart", "fast", "immediate")

#: How many lines of the server log a start error quotes.
_LOG_TAIL_LINES = 20

#: How many times start() runs pg_ctl when another process takes the port between check and bind.
_START_ATTEMPTS = 3


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


class _PortRace(Exception):
    """A start failed because another process took the port between our check and the bind."""

    def __init__(self, error: ServerError) -> None:
        super().__init__(error.message)
        self.error = error


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
    corrupt the data, so use it for test servers only. ``os_user`` is the
    unprivileged user the programs run as when this process is root (see
    :mod:`storekeeper.pgserver.osuser`).
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
        # Absolute, because the programs run with cwd "/" (see osuser.run_as) and the
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
        self._os_user = osuser.resolve_os_user(os_user, self.datadir)
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
            missing = binaries.missing_programs(self._bindir)
            if missing:
                raise ServerError(
                    f"PostgreSQL bin directory {self._bindir} lacks {', '.join(missing)}.",
                    hint=f"pass the bin directory of a PostgreSQL server install, or {INSTALL_HINT}",
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
        configured = conf.read_auto_conf(self.datadir).get("port")
        if configured is not None and configured.isdigit():
            return int(configured)
        return self._port

    # ------------------------------------------------------------ find bindir

    @staticmethod
    def find_bindir(
        *, path: str | None = None, search_root: Path = DEFAULT_SEARCH_ROOT, major: str | None = None
    ) -> Path:
        """Find the directory holding PostgreSQL's server programs (see :func:`binaries.find_bindir`)."""
        return binaries.find_bindir(path=path, search_root=search_root, major=major)

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
        osuser.chown(self.datadir, self._os_user)

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
        settings = conf.connection_settings(self.datadir, self.host, self._port or self._free_port())
        if self.fast:
            settings.update(conf.FAST_SETTINGS)
        conf.update_auto_conf(self.datadir, settings, self._os_user)
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

        def attempt() -> None:
            nonlocal preferred
            try:
                self._start_on(preferred, timeout)
            except _PortRace:
                preferred = None  # the next attempt picks a free port
                raise

        retry(
            attempt,
            on=_PortRace,
            attempts=_START_ATTEMPTS,
            give_up=lambda err: err.error if isinstance(err, _PortRace) else None,
        )
        return True

    def _start_on(self, preferred: int | None, timeout: float) -> None:
        """Run ``pg_ctl start`` once, on ``preferred`` if it is free, else on a free port.

        Raises :class:`_PortRace` when another process took the port between our
        check and the server's bind, :class:`ServerError` on any other failure.
        """
        # An explicit or remembered port is kept if free; otherwise pick one.
        port = preferred if preferred is not None and ports.port_is_free(self.host, preferred) else None
        if port is None:
            port = self._free_port()
        conf.update_auto_conf(self.datadir, conf.connection_settings(self.datadir, self.host, port), self._os_user)
        conf.ensure_hba_for_host(self.datadir, self.host, self._os_user)

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
            return
        log_tail = self._log_since(log_offset)
        # pg_ctl gives up after --timeout but leaves a slow postmaster running:
        # stop it so a failed start leaves nothing behind.
        if self._read_pidfile() is not None:
            self._pg_ctl_stop("immediate", timeout=30)
        error = ServerError(
            f"PostgreSQL server in {self.datadir} did not start (pg_ctl exit {result.returncode}). "
            f"Last lines of {self.log_path}:\n{log_tail or _tail(result.stdout + result.stderr)}",
            hint=f"read the log above and fix the cause (see {self.log_path}), then start again",
            datadir=self.datadir,
        )
        # Another process may grab the free port between our check and the bind.
        if "could not bind" in log_tail:
            raise _PortRace(error)
        raise error

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
            version, output = binaries.programs_version(self.bindir)
            if version is None:
                raise ServerError(
                    f"Cannot tell the version of {self.bindir / 'postgres'}: {output}".strip(),
                    hint=INSTALL_HINT,
                    datadir=self.datadir,
                )
            self._version = version
        return self._version

    def postgis_available(self) -> bool:
        """Return whether PostGIS is installed for these server programs (postgis.control exists)."""
        major = self.version().split(".")[0]
        return any((d / "postgis.control").is_file() for d in binaries.extension_dirs(self.bindir, major))

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
            host=conf.connect_host(self.host),
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

    def __enter__(self) -> Self:
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
            osuser.chown(tempdir, server._os_user)
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

    def _run(self, args: Sequence[str | Path], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a server program as the server's OS user, with a clean environment."""
        return osuser.run_as(self._os_user, args, timeout=timeout)

    def _free_port(self) -> int:
        """Return a port free on every address ``host`` stands for."""
        try:
            return ports.pick_free_port(self.host)
        except ports.NoFreePortError:
            raise ServerError(
                f"Could not find a free TCP port on {self.host}.",
                hint="pass port= a free port",
            ) from None

    def _check_reachable(self) -> None:
        """Fail clearly when the OS user cannot traverse to the data directory or the server programs."""
        if self._os_user is not None:
            osuser.check_reachable(self._os_user, self.datadir, self.bindir)

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
        return osuser.write_new_file(
            self.password + "\n", prefix=".storekeeper-pw-", directory=directory, user=self._os_user
        )

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

    def _log_since(self, offset: int) -> str:
        """Return the last lines the server logged after ``offset``."""
        try:
            with self.log_path.open("rb") as file:
                file.seek(offset)
                data = file.read()
        except OSError:
            return ""
        return _tail(data.decode("utf-8", errors="replace"))


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of ``text``."""
    return "\n".join(text.strip().splitlines()[-lines:])
