"""Who is asking: API tokens, password sign-in (throttled), session cookies and CSRF tokens.

The REST API takes ``Authorization: Bearer TOKEN``; the web admin signs people
in with a password and keeps them in a signed session cookie, and protects each
form with a CSRF token. Both end in a :class:`Principal`.

* **API tokens** are 256-bit random strings shown once. Only their SHA-256 is
  kept: a token is as strong as a random key, so a fast hash is enough, and a
  slow one (argon2) would cap the API's throughput.
* **Sign-in throttling** counts failed password sign-ins per (username, client
  address: :func:`client_address`) in the platform database, so every worker of ``storekeeper start
  --workers N`` sees the same count: after :data:`MAX_FAILURES` failures within
  :data:`FAILURE_WINDOW` seconds that pair gets 429 with ``Retry-After`` for
  :data:`BLOCK_SECONDS`. A success clears the count.
* **Sessions** are recorded server-side (``portal_sessions``: the SHA-256 of a
  random session id, the user, an expiry). The cookie carries the id, signed
  with a key derived from the config's ``secret_key`` (itsdangerous),
  HttpOnly, SameSite=Lax and Secure over HTTPS. Signing out deletes the
  record, and a password reset or disabling the user deletes all of theirs,
  so a replayed cookie is refused.
* **CSRF**: a random nonce in its own cookie; forms carry a signed copy of it
  (:func:`csrf_token`), checked by :func:`verify_csrf`. Requests authenticated
  by the session cookie must present it on every state-changing method.

Example (a web admin form)::

    token = auth.csrf_token(request, response)        # put it in <input name="csrf_token">
    ...
    auth.require_csrf(request, form.get("csrf_token"))
    user = auth.sign_in(platform, username, password, client=auth.client_address(request))
    auth.start_session(response, request, platform, user)
    ...
    auth.end_session(response, request, platform)      # sign out: the cookie stops working everywhere
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, or_, select, update

from storekeeper import audit, users
from storekeeper.config import Config
from storekeeper.errors import PortalError, TokenError
from storekeeper.platform import Platform
from storekeeper.platform.models import ApiToken, PortalSession, SignInThrottle, User, utcnow

#: API tokens start with this, so they are easy to spot in a leak scanner or a log.
TOKEN_PREFIX = "skt_"
TOKEN_BYTES = 32
#: How many leading characters of a token are kept to tell tokens apart.
SHOWN_PREFIX = 12
#: last_used_at is written at most this often per token (a write per request would slow the API).
LAST_USED_RESOLUTION = timedelta(seconds=60)

MAX_FAILURES = 5
FAILURE_WINDOW = 60
BLOCK_SECONDS = 60

SESSION_COOKIE = "storekeeper_session"
SESSION_MAX_AGE = 12 * 3600
#: Random bytes of a session id (the cookie carries it signed; the platform database its SHA-256).
SESSION_ID_BYTES = 32
CSRF_COOKIE = "storekeeper_csrf"
CSRF_MAX_AGE = 12 * 3600
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """A signed-in user, and how they proved it (``"token"`` or ``"session"``)."""

    username: str
    role: str
    via: str
    token_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        """How the audit log names this user."""
        return f"user:{self.username}"


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed: never the token itself."""

    id: int
    name: str
    prefix: str
    username: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


def client_address(request: Request) -> str:
    """Return the client's address: who connected, or behind a proxy listed in ``portal.forwarded_allow_ips``,
    the address that proxy forwarded (see :mod:`storekeeper.portal.limits`); never a header from anyone else."""
    return request.client.host if request.client else "unknown"


# -- API tokens -------------------------------------------------------------------------


def hash_token(token: str) -> str:
    """Return the hex SHA-256 under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def _token_info(row: ApiToken, username: str) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.prefix, username, row.created_at, row.last_used_at, row.revoked)


#: The name of a token whose client sent no name and no usable User-Agent.
DEFAULT_TOKEN_NAME = "api"
_PRODUCT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,59}")


def default_token_name(user_agent: str | None) -> str:
    """Name a token after the client that asked for it: the User-Agent's first product.

    ``curl/8.5.0`` gives ``curl``, ``python-httpx/0.27`` gives ``python-httpx``; no or an
    unusable User-Agent gives ``api``.
    """
    match = _PRODUCT.match((user_agent or "").strip())
    return match.group(0) if match else DEFAULT_TOKEN_NAME


def _token_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise TokenError.bad_name()
    return name


def create_token(platform: Platform, username: str, name: str) -> tuple[TokenInfo, str]:
    """Create an API token for a user; return its record and the token (shown this once)."""
    name = _token_name(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    with audit.acting_as(f"user:{username}"), platform.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None or not user.active:
            raise PortalError.unauthenticated(f'User "{username}" does not exist or is disabled.')
        row = ApiToken(user_id=user.id, name=name, token_hash=hash_token(token), prefix=token[:SHOWN_PREFIX])
        session.add(row)
        session.flush()
        audit.record(session, "token.create", username, detail=f"token {row.id} ({name})")
        return _token_info(row, username), token


def list_tokens(platform: Platform, username: str | None = None) -> list[TokenInfo]:
    """Return the API tokens of one user, or of everyone, newest first."""
    stmt = select(ApiToken, User.username).join(ApiToken.user).order_by(ApiToken.id.desc())
    if username is not None:
        stmt = stmt.where(User.username == username)
    with platform.session() as session:
        return [_token_info(row, name) for row, name in session.execute(stmt)]


def revoke_token(platform: Platform, token_id: int, *, owner: str | None = None) -> TokenInfo:
    """Revoke a token (idempotent); with ``owner``, only that user's own token."""
    with platform.session() as session:
        found = session.execute(
            select(ApiToken, User.username).join(ApiToken.user).where(ApiToken.id == token_id)
        ).first()
        if found is None or (owner is not None and found[1] != owner):
            raise TokenError.not_found(token_id, owner)
        row, username = found
        if not row.revoked:
            row.revoked = True
            audit.record(session, "token.revoke", username, detail=f"token {row.id} ({row.name})")
        info = _token_info(row, username)
    users.credentials_changed()  # this process's token cache forgets it now; other processes within its TTL
    return info


def authenticate_token(platform: Platform, token: str) -> Principal | None:
    """Return who a bearer token belongs to, or None when it is unknown, revoked or its user disabled."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    # Plain columns through Core, not ORM objects: this runs on every signed-in API request.
    stmt = (
        select(
            ApiToken.id,
            ApiToken.token_hash,
            ApiToken.revoked,
            ApiToken.last_used_at,
            User.username,
            User.role,
            User.active,
        )
        .join(User, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == digest)
    )
    with platform.engine.connect() as conn:
        found = conn.execute(stmt).first()
        if found is None:
            return None
        token_id, stored_hash, revoked, last_used_at, username, role, active = found
        # The lookup is by hash; compare again in constant time so timing says nothing about near misses.
        if revoked or not active or not hmac.compare_digest(stored_hash, digest):
            return None
        now = utcnow()
        if last_used_at is None or _aware(last_used_at) < now - LAST_USED_RESOLUTION:
            conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
            conn.commit()
    return Principal(username, role, "token", token_id)


class TokenCache:
    """Bearer tokens this process has checked recently, so a signed-in API request costs no platform query.

    Keyed by the token's SHA-256 (the token itself is not kept), each entry lives
    ``seconds`` (``portal.token_cache_seconds``; 0 turns the cache off). Only
    tokens that were valid are kept: an unknown token is looked up every time.

    What a change of rights costs: a token revoked, or a user disabled, demoted
    or given a new password, **in this process** is refused from the next request
    on (the change bumps :func:`storekeeper.users.credentials_generation`, and
    older entries are ignored); **in another process** (another worker of
    ``storekeeper start --workers N``, or the CLI) within ``seconds``.

    Example::

        cache = TokenCache(5.0)
        principal = cache.get(token) or authenticate_token(platform, token)
        if principal is not None:
            cache.put(token, principal)
    """

    #: Entries kept at most; past it the cache starts again empty (valid tokens only, so rarely).
    MAX_ENTRIES = 10_000

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[str, tuple[float, int, Principal]] = {}
        #: Hashes of tokens being checked again right now (see :meth:`claim`).
        self._checking: set[str] = set()

    def get(self, token: str) -> Principal | None:
        """Return who ``token`` belonged to when last checked, if that was less than ``seconds`` ago."""
        if self.seconds <= 0:
            return None
        found = self._entries.get(hash_token(token))
        if found is None:
            return None
        deadline, generation, principal = found
        if deadline < time.monotonic() or generation != users.credentials_generation():
            return None
        return principal

    def put(self, token: str, principal: Principal) -> None:
        """Remember that ``token`` is ``principal``'s (call it only after a successful check)."""
        if self.seconds <= 0:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[hash_token(token)] = (
            time.monotonic() + self.seconds,
            users.credentials_generation(),
            principal,
        )

    def claim(self, token: str) -> Principal | None:
        """Called on a miss: return the expired answer if another request is checking ``token`` again.

        Otherwise this caller checks it (and must call :meth:`release` after): one check per
        token at a time, instead of one per request in flight when the entry ran out. The
        expired answer is used only while that one check runs, and never after a change of
        rights in this process.
        """
        if self.seconds <= 0:
            return None
        digest = hash_token(token)
        if digest in self._checking:
            found = self._entries.get(digest)
            if found is not None and found[1] == users.credentials_generation():
                return found[2]
        self._checking.add(digest)
        return None

    def release(self, token: str, principal: Principal | None) -> None:
        """End this caller's check of ``token``: remember ``principal``, or forget the token when refused."""
        digest = hash_token(token)
        self._checking.discard(digest)
        if principal is None:
            self._entries.pop(digest, None)
        else:
            self.put(token, principal)

    def clear(self) -> None:
        self._entries.clear()


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- password sign-in, throttled -------------------------------------------------------------


def _throttle_key(username: str, client: str) -> str:
    return hashlib.sha256(f"{username.lower()}\n{client}".encode()).hexdigest()


def _retry_after(platform: Platform, key: str) -> int:
    """Return the seconds left on a block of ``key`` (0 when not blocked)."""
    with platform.session() as session:
        row = session.get(SignInThrottle, key)
        if row is None or row.blocked_until is None:
            return 0
        left = (_aware(row.blocked_until) - utcnow()).total_seconds()
        return max(0, int(left + 0.999))


def _record_failure(platform: Platform, key: str) -> None:
    now = utcnow()
    with platform.session() as session:
        # Forget old counts (of anyone) so guessed usernames do not pile up rows forever.
        stale = now - timedelta(seconds=FAILURE_WINDOW + BLOCK_SECONDS)
        session.execute(
            delete(SignInThrottle).where(
                SignInThrottle.key != key,
                SignInThrottle.window_started_at < stale,
                or_(SignInThrottle.blocked_until.is_(None), SignInThrottle.blocked_until < now),
            )
        )
        row = session.get(SignInThrottle, key)
        if row is None:
            row = SignInThrottle(key=key, failures=0, window_started_at=now)
            session.add(row)
        if _aware(row.window_started_at) < now - timedelta(seconds=FAILURE_WINDOW) or (
            row.blocked_until is not None and _aware(row.blocked_until) <= now
        ):
            row.failures, row.window_started_at, row.blocked_until = 0, now, None
        row.failures += 1
        if row.failures >= MAX_FAILURES:
            row.blocked_until = now + timedelta(seconds=BLOCK_SECONDS)


def _clear_failures(platform: Platform, key: str) -> None:
    with platform.session() as session:
        row = session.get(SignInThrottle, key)
        if row is not None:
            session.delete(row)


def sign_in(platform: Platform, username: str, password: str, *, client: str) -> users.UserInfo:
    """Check a username and password; raise 401 when wrong, 429 while this user+client is throttled."""
    key = _throttle_key(username, client)
    wait = _retry_after(platform, key)
    if wait:
        raise PortalError.throttled(username, wait)
    user = users.verify_user(platform, username, password)
    if user is None:
        _record_failure(platform, key)
        with audit.acting_as(f"client:{client}"):
            audit.record_now(platform, "user.sign_in", username[:150], "error", "wrong username or password")
        raise PortalError.wrong_credentials(MAX_FAILURES, FAILURE_WINDOW, BLOCK_SECONDS)
    _clear_failures(platform, key)
    return user


# -- signing keys ----------------------------------------------------------------------------


def _derived_key(config: Config, purpose: str) -> bytes:
    """Return a key for one purpose, derived from the secret key (which also encrypts passwords)."""
    return hmac.new(config.secret_key.encode(), f"storekeeper.portal.{purpose}".encode(), hashlib.sha256).digest()


def _serializer(config: Config, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_derived_key(config, purpose), salt=purpose)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


# -- sessions (web admin) -------------------------------------------------------------------


def _password_fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def start_session(response: Response, request: Request, platform: Platform, user: users.UserInfo) -> None:
    """Sign ``user`` in: record a new session and set its signed cookie on ``response``.

    A session this browser already had is ended first, so a cookie planted before
    sign-in (session fixation) never becomes a signed-in one.
    """
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    now = utcnow()
    previous = _cookie_session_id(request, platform.config)
    with audit.acting_as(f"user:{user.username}"), platform.session() as session:
        row = session.scalar(select(User).where(User.username == user.username))
        assert row is not None
        # Forget expired sessions (of anyone), and this browser's previous one.
        session.execute(delete(PortalSession).where(PortalSession.expires_at < now))
        if previous is not None:
            session.execute(delete(PortalSession).where(PortalSession.id_hash == hash_token(previous)))
        session.add(
            PortalSession(
                id_hash=hash_token(session_id),
                user_id=row.id,
                created_at=now,
                expires_at=now + timedelta(seconds=SESSION_MAX_AGE),
            )
        )
        value = _serializer(platform.config, "session").dumps(
            {"s": session_id, "p": _password_fingerprint(row.password_hash)}
        )
        audit.record(session, "user.sign_in", row.username, detail=f"session from {client_address(request)}")
    response.set_cookie(
        SESSION_COOKIE, value, max_age=SESSION_MAX_AGE, httponly=True, samesite="lax", secure=_secure(request), path="/"
    )


def end_session(response: Response, request: Request, platform: Platform) -> None:
    """Sign out: delete the session's record (a replayed cookie is refused) and remove the cookie."""
    session_id = _cookie_session_id(request, platform.config)
    if session_id is not None:
        with platform.session() as session:
            session.execute(delete(PortalSession).where(PortalSession.id_hash == hash_token(session_id)))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")


def _cookie_data(request: Request, config: Config) -> dict[str, str] | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(config, "session").loads(raw, max_age=SESSION_MAX_AGE)
    except BadSignature:  # also covers expired ones
        return None
    if not isinstance(data, dict) or not isinstance(data.get("s"), str):
        return None  # not ours, or a cookie from before sessions were recorded
    return data


def _cookie_session_id(request: Request, config: Config) -> str | None:
    data = _cookie_data(request, config)
    return data["s"] if data else None


def session_principal(request: Request, platform: Platform) -> Principal | None:
    """Return the user signed in by the request's session cookie, or None.

    The cookie must be signed by this portal *and* name a session still recorded:
    signing out, a password reset and disabling the user delete the record.
    """
    data = _cookie_data(request, platform.config)
    if data is None:
        return None
    stmt = (
        select(PortalSession.expires_at, User.username, User.role, User.active, User.password_hash)
        .join(User, PortalSession.user_id == User.id)
        .where(PortalSession.id_hash == hash_token(data["s"]))
    )
    with platform.engine.connect() as conn:
        found = conn.execute(stmt).first()
    if found is None:
        return None  # signed out, or ended by a password reset
    expires_at, username, role, active, password_hash = found
    if not active or _aware(expires_at) <= utcnow():
        return None
    if not hmac.compare_digest(_password_fingerprint(password_hash), str(data.get("p", ""))):
        return None  # the password was changed since this session began
    return Principal(username, role, "session")


# -- CSRF -----------------------------------------------------------------------------------


def csrf_token(request: Request, response: Response) -> str:
    """Return the CSRF token to put in a form, setting the CSRF cookie on ``response`` when missing."""
    nonce = getattr(request.state, "csrf_nonce", None) or request.cookies.get(CSRF_COOKIE)
    if not nonce:
        nonce = secrets.token_urlsafe(32)
        response.set_cookie(
            CSRF_COOKIE, nonce, max_age=CSRF_MAX_AGE, httponly=True, samesite="lax", secure=_secure(request), path="/"
        )
    request.state.csrf_nonce = nonce
    return _serializer(_config(request), "csrf").dumps(nonce)


def verify_csrf(request: Request, submitted: str | None) -> bool:
    """Return True when ``submitted`` is a CSRF token issued for this browser's CSRF cookie."""
    nonce = request.cookies.get(CSRF_COOKIE)
    if not nonce or not submitted:
        return False
    try:
        signed = _serializer(_config(request), "csrf").loads(submitted, max_age=CSRF_MAX_AGE)
    except BadSignature:
        return False
    return isinstance(signed, str) and hmac.compare_digest(signed, nonce)


def require_csrf(request: Request, submitted: str | None) -> None:
    """Raise 403 unless ``submitted`` is a valid CSRF token (a no-op for safe methods)."""
    if request.method in SAFE_METHODS:
        return
    if not verify_csrf(request, submitted):
        raise PortalError.csrf_failed()


def _config(request: Request) -> Config:
    return request.app.state.portal.config
