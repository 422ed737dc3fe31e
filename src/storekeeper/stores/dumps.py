"""Backup files of stores, and the PostgreSQL client programs that make and read them.

A backup file is a plain (uncompressed) tar holding two members:

* ``dump.pgdump``: the store's ``pg_dump -Fc`` archive (compressed by pg_dump);
* ``manifest.json``: what the file holds (:class:`Manifest`): app, store, spatial,
  migrations revision, server version, installation, when, and the dump's size
  and SHA-256.

The dump comes first so it is streamed straight from ``pg_dump`` into the file
(its tar header is written once its size is known); readers find the manifest
by the tar headers, skipping the dump. A file is written as ``NAME.partial``
and renamed when complete, so a file with the final name is never half-written.

``pg_dump`` and ``pg_restore`` are found like the server programs (``PATH``,
then Debian's ``/usr/lib/postgresql/<major>/bin``, then the ``local`` extra's
wheel), with at least the server's major version. Passwords reach them only
through a temporary ``PGPASSFILE`` (mode 0600), never their command line or
environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from storekeeper.errors import ConfigError, StoreError
from storekeeper.pgserver.binaries import DEFAULT_SEARCH_ROOT, embedded_bindir, is_executable, version_key

#: The names of a backup file's two members.
DUMP_MEMBER = "dump.pgdump"
MANIFEST_MEMBER = "manifest.json"
#: What a manifest's ``format`` says; a file of another format is refused.
FORMAT = "storekeeper-backup/1"
#: A backup file's suffix (``storekeeper backups`` lists files with it).
SUFFIX = ".skbackup"
_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE

#: Called with the bytes written (or read) so far.
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Manifest:
    """What a backup file holds, checked by ``import`` before anything is touched."""

    app: str
    store: str
    spatial: bool
    database: str
    server_version: str
    server_version_num: int
    pg_dump_version: str
    migrations_revision: str | None
    installation: str | None
    created_at: str
    dump_bytes: int
    dump_sha256: str
    format: str = FORMAT
    #: The store's size on the server when it was exported (bytes), when the service user may see it.
    database_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: bytes, path: Path) -> Manifest:
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"format is {data.get('format') if isinstance(data, dict) else None!r}")
            known = {f for f in cls.__dataclass_fields__}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError) as err:
            raise corrupt(path, f"its manifest cannot be read ({err})") from None


def corrupt(path: Path, why: str) -> StoreError:
    """The error of a file that is not a complete backup file (nothing was changed)."""
    return StoreError(
        f"{path} is not a complete backup file: {why}. Nothing was changed.",
        hint="use another backup file (storekeeper backups DIR lists them), or export the store again: "
        "storekeeper stores export APP --database STORE -o FILE",
        status=422,
    )


# -- client programs ---------------------------------------------------------------------


def program_version(path: Path) -> tuple[int, str] | None:
    """Return (major, full version) of a client program such as ``pg_dump``, or None when it does not run."""
    try:
        result = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)(\.\S+)?", result.stdout)
    if result.returncode != 0 or match is None:
        return None
    return int(match.group(1)), match.group(1) + (match.group(2) or "")


def client_hint(major: int) -> str:
    """How to install client programs of a major version."""
    return (
        f"install PostgreSQL {major}'s client programs (Debian/Ubuntu: apt-get install postgresql-client-{major}; "
        f"macOS: brew install postgresql@{major}), or put a directory holding pg_dump and pg_restore of "
        f"PostgreSQL {major} or newer on PATH"
    )


_found: dict[tuple[str, int, str | None, Path], tuple[Path, str]] = {}


def find_program(
    name: str, server_major: int, *, path: str | None = None, search_root: Path = DEFAULT_SEARCH_ROOT
) -> tuple[Path, str]:
    """Find client program ``name`` of the server's major version (preferred) or newer; return (path, version).

    Candidates: ``name`` on ``PATH``, Debian's ``<search_root>/<major>/bin`` and the
    ``local`` extra's wheel. One of exactly the server's major version wins over a newer one.
    A ``PATH`` entry that is a wrapper (Debian's ``pg_wrapper``, a Perl script that picks a
    version on each run) comes after the real programs. Found once per process.
    """
    path = path if path is not None else os.environ.get("PATH", os.defpath)
    key = (name, server_major, path, search_root)
    if key not in _found:
        _found[key] = _find_program(name, server_major, path, search_root)
    return _found[key]


def _find_program(name: str, server_major: int, path: str | None, search_root: Path) -> tuple[Path, str]:
    candidates: list[Path] = []
    wrappers: list[Path] = []
    on_path = shutil.which(name, path=path)
    if on_path is not None:
        (candidates if Path(on_path).resolve().name == name else wrappers).append(Path(on_path))
    versions = []
    for bindir in search_root.glob("*/bin"):
        key = version_key(bindir.parent.name)
        if key is not None and is_executable(bindir / name):
            versions.append((key, bindir / name))
    candidates += [p for _, p in sorted(versions, reverse=True)]
    candidates += wrappers
    embedded = embedded_bindir()
    if embedded is not None and is_executable(embedded / name):
        candidates.append(embedded / name)
    found: list[tuple[int, str, Path]] = []
    for candidate in dict.fromkeys(candidates):
        ran = program_version(candidate)
        if ran is not None and ran[0] >= server_major:
            found.append((ran[0], ran[1], candidate))
    if not found:
        seen = ", ".join(str(c) for c in dict.fromkeys(candidates)) or "none"
        raise ConfigError(
            f"{name} of PostgreSQL {server_major} or newer is needed (the server is PostgreSQL {server_major}) "
            f"and was not found. Checked: {seen}.",
            hint=client_hint(server_major),
        )
    exact = [f for f in found if f[0] == server_major]
    _major, version, chosen = (exact or sorted(found, key=lambda f: f[0]))[0]
    return chosen, version


def _passfile_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


@contextlib.contextmanager
def passfile(host: str, port: int, user: str, password: str | None) -> Iterator[dict[str, str]]:
    """Yield the environment that gives a client program its password through a temporary PGPASSFILE (0600).

    The environment never holds the password itself (``PGPASSWORD`` is removed), nor
    does the command line; the file is removed when the block ends.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE", "PGSERVICE")}
    if password is None:
        yield env
        return
    fd, name = tempfile.mkstemp(prefix="storekeeper-pgpass-")
    try:
        os.fchmod(fd, 0o600)
        line = ":".join(_passfile_field(v) for v in (host, str(port), "*", user, password)) + "\n"
        with os.fdopen(fd, "w") as f:
            f.write(line)
        yield {**env, "PGPASSFILE": name}
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


# -- writing a backup file ---------------------------------------------------------------


def _header(name: str, size: int, mtime: float) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o600
    return info.tobuf(format=tarfile.GNU_FORMAT)  # one block, whatever the size


def _pad(out: IO[bytes], size: int) -> None:
    rest = size % _BLOCK
    if rest:
        out.write(b"\0" * (_BLOCK - rest))


@dataclass
class Written:
    """What :func:`write_dump` streamed into a file."""

    size: int
    sha256: str


def write_dump(out: IO[bytes], source: IO[bytes], mtime: float, on_progress: Progress | None = None) -> Written:
    """Stream a dump into ``out`` (seekable, at a block boundary) as the tar member :data:`DUMP_MEMBER`."""
    start = out.tell()
    out.write(b"\0" * _BLOCK)  # the header, written below once the size is known
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(_CHUNK):
        out.write(chunk)
        digest.update(chunk)
        size += len(chunk)
        if on_progress is not None:
            on_progress(size)
    _pad(out, size)
    end = out.tell()
    out.seek(start)
    out.write(_header(DUMP_MEMBER, size, mtime))
    out.seek(end)
    return Written(size, digest.hexdigest())


def write_manifest(out: IO[bytes], manifest: Manifest, mtime: float) -> None:
    """Append the manifest member and the end of the archive."""
    raw = json.dumps(manifest.to_dict(), indent=2, sort_keys=True).encode()
    out.write(_header(MANIFEST_MEMBER, len(raw), mtime))
    out.write(raw)
    _pad(out, len(raw))
    out.write(b"\0" * (2 * _BLOCK))


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def publish(partial: Path, path: Path) -> None:
    """Make a finished file visible under its name (fsynced first, renamed atomically)."""
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, path)
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- reading a backup file ---------------------------------------------------------------


@dataclass(frozen=True)
class Backup:
    """A backup file whose manifest was read (and, after :func:`verify`, whose dump was checked)."""

    path: Path
    manifest: Manifest
    #: Where the dump starts in the file, and its size (from the tar header).
    offset: int
    size: int


def read_manifest(path: Path) -> Backup:
    """Read a backup file's manifest and find its dump; raise :func:`corrupt` when it is not a backup."""
    try:
        with tarfile.open(path, "r:") as tar:
            members = {m.name: m for m in tar.getmembers()}
            dump, meta = members.get(DUMP_MEMBER), members.get(MANIFEST_MEMBER)
            if dump is None or meta is None or not dump.isfile() or not meta.isfile():
                raise corrupt(path, f"it lacks {DUMP_MEMBER} or {MANIFEST_MEMBER}")
            handle = tar.extractfile(meta)
            assert handle is not None
            raw = handle.read()
            offset, size = dump.offset_data, dump.size
    except (tarfile.TarError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError | IsADirectoryError | PermissionError):
            raise StoreError(f"Cannot read {path}: {err.strerror}.", hint="check the file's path", status=404) from None
        raise corrupt(path, f"it is not a readable tar file ({err})") from None
    if len(raw) > 1 << 20:
        raise corrupt(path, "its manifest is too large")
    manifest = Manifest.from_json(raw, path)
    if manifest.dump_bytes != size:
        raise corrupt(path, f"its dump holds {size} bytes where the manifest says {manifest.dump_bytes} (truncated?)")
    if path.stat().st_size < offset + size:
        raise corrupt(path, "it is shorter than its dump (truncated)")
    return Backup(path, manifest, offset, size)


@contextlib.contextmanager
def dump_stream(backup: Backup) -> Iterator[io.BufferedReader]:
    """Yield a reader of exactly the dump's bytes."""
    with open(backup.path, "rb") as f:
        f.seek(backup.offset)
        yield io.BufferedReader(_Limited(f, backup.size), _CHUNK)


class _Limited(io.RawIOBase):
    def __init__(self, raw: IO[bytes], size: int) -> None:
        self._raw, self._left = raw, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), self._left)]
        n = self._raw.readinto(view)  # type: ignore[attr-defined]
        self._left -= n or 0
        return n or 0


def verify(backup: Backup, on_progress: Progress | None = None) -> None:
    """Check the dump against the manifest's SHA-256; raise :func:`corrupt` when they differ."""
    digest = hashlib.sha256()
    read = 0
    with dump_stream(backup) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            read += len(chunk)
            if on_progress is not None:
                on_progress(read)
    if read != backup.size or digest.hexdigest() != backup.manifest.dump_sha256:
        raise corrupt(backup.path, "its dump does not match the checksum in its manifest (corrupt or truncated)")


def pump(source: IO[bytes], sink: IO[bytes]) -> None:
    """Copy ``source`` into ``sink`` (a child's stdin), then close the sink."""
    try:
        while chunk := source.read(_CHUNK):
            sink.write(chunk)
    except BrokenPipeError:
        pass  # the child stopped reading; its exit status says why
    finally:
        with contextlib.suppress(BrokenPipeError, OSError):
            sink.close()


#: ``pg_restore -l`` entries: ``ID; CATALOG-OID OID TYPE SCHEMA NAME OWNER``.
_EXTENSION_ENTRY = re.compile(r"^\d+; \d+ \d+ (?:EXTENSION - |COMMENT - EXTENSION )(\S+)")
_DATA_ENTRY = re.compile(r"^\d+; \d+ \d+ (?:TABLE DATA|SEQUENCE SET) (\S+) (\S+) ")
#: Entries about the database itself (its comment is storekeeper's marker) or the public schema's comment.
_DATABASE_ENTRY = re.compile(
    r"^\d+; \d+ \d+ (?:DATABASE |DATABASE PROPERTIES |COMMENT - DATABASE |COMMENT - SCHEMA public )"
)


def filter_list(listing: str, extensions: set[str], config_tables: set[tuple[str, str]]) -> tuple[str, int]:
    """Comment out the entries a new store's database already has, or must not take from the archive.

    Left out: ``CREATE EXTENSION`` (and its comment) of the ``extensions`` already in
    the database (PostGIS, from the store's template), the data of those extensions'
    ``config_tables`` (``spatial_ref_sys``: the store's role may not write it), and the
    database's own properties and comment (the marker). Returns the list to give
    ``pg_restore -L`` and how many entries were left out.
    """
    lines, skipped = [], 0
    for line in listing.splitlines():
        ext = _EXTENSION_ENTRY.match(line)
        data = _DATA_ENTRY.match(line)
        if (
            (ext is not None and ext.group(1) in extensions)
            or (data is not None and (data.group(1), data.group(2)) in config_tables)
            or _DATABASE_ENTRY.match(line)
        ):
            lines.append(";" + line)
            skipped += 1
        else:
            lines.append(line)
    return "\n".join(lines) + "\n", skipped
