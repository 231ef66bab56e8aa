"""Who may use the workbench: users with roles, their API tokens and one-time login links.

The access list is a projection of the `wb.access.>` events, kept in memory by every gateway (a team
has tens of users, not millions) and rebuilt from the log when the gateway starts. Secrets never
enter an event: API tokens and login codes are 256 random bits, stored as their SHA-256 (a slow hash
buys nothing against guessing 256 bits and would cost every request).

Besides the users in the log there is one bootstrap admin, named by WB_ADMIN_NAME, whose token is
WB_API_TOKEN: how the first admin adds the others, and what `make run` logs in with. It cannot be
revoked through the API; rotating WB_API_TOKEN replaces it (docs/operations.md).
"""

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from google.protobuf.message import Message

from eventlog import ConcurrencyConflict, EventStore, NewEvent, StoredEvent, from_timestamp, to_timestamp
from eventlog import token as subject_token
from eventlog.tasks import cancel_and_wait
from workbench.access.v1 import access_pb2 as acc

log = logging.getLogger(__name__)

SUBJECTS = "wb.access.>"
LOADING = "the access list is still loading from the event log; try again in a moment"
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0


class Role(IntEnum):
    """Each role includes the rights of the ones below it (values as in access.proto)."""

    VIEWER = acc.ROLE_VIEWER
    ANNOTATOR = acc.ROLE_ANNOTATOR
    ADMIN = acc.ROLE_ADMIN

    @property
    def word(self) -> str:
        return self.name.lower()

    @classmethod
    def from_word(cls, word: str) -> "Role":
        try:
            return cls[word.upper()]
        except KeyError:
            raise AccessError(f"unknown role {word!r}: one of viewer, annotator, admin") from None


class AccessError(ValueError):
    """A request about users that cannot be done as asked (the message says why)."""


class UnknownUser(AccessError):
    pass


class NotLoaded(RuntimeError):
    """The access list has not caught up with the log yet (the gateway just started, or NATS is away)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and how they proved it."""

    name: str
    role: Role
    via: str  # "bootstrap", "token", "session"
    generation: int  # the sequence of the user's UserAdded (0: the bootstrap admin)
    # What the rate limit counts against: each API token on its own, a user's sessions together.
    credential: str = ""

    @property
    def rate_key(self) -> str:
        return self.credential or f"{self.via}:{self.name}:{self.generation}"


@dataclass(slots=True)
class User:
    name: str
    role: Role
    generation: int
    added_at: datetime | None
    added_by: str
    tokens: dict[str, str] = field(default_factory=dict)  # token id -> sha256
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class LoginLink:
    name: str
    expires_at: datetime
    used: bool


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def user_subject(name: str) -> str:
    return f"wb.access.users.{subject_token(name)}"


def link_subject(code_sha256: str) -> str:
    return f"wb.access.links.{code_sha256}"


class AccessList:
    """The projection: pure state folded from the events, no I/O."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.by_token: dict[str, tuple[str, str]] = {}  # sha256 -> (name, token id)
        self.links: dict[str, LoginLink] = {}
        self.position = 0

    def apply(self, sequence: int, event: Message) -> None:
        self.position = max(self.position, sequence)
        if isinstance(event, acc.UserAdded):
            self.users[event.name] = User(
                event.name, Role(event.role), sequence, from_timestamp(event.added_at), event.added_by
            )
        elif isinstance(event, acc.UserRoleChanged) and event.name in self.users:
            self.users[event.name].role = Role(event.role)
        elif isinstance(event, acc.UserRevoked) and event.name in self.users:
            user = self.users[event.name]
            user.revoked = True
            for digest in user.tokens.values():
                self.by_token.pop(digest, ("", ""))
            user.tokens.clear()
        elif isinstance(event, acc.TokenIssued) and event.name in self.users:
            self.users[event.name].tokens[event.token_id] = event.token_sha256
            self.by_token[event.token_sha256] = (event.name, event.token_id)
        elif isinstance(event, acc.TokenRevoked) and event.name in self.users:
            digest = self.users[event.name].tokens.pop(event.token_id, "")
            self.by_token.pop(digest, ("", ""))
        elif isinstance(event, acc.LoginLinkIssued):
            expires = from_timestamp(event.expires_at) or datetime.min.replace(tzinfo=UTC)
            self.links[event.code_sha256] = LoginLink(event.name, expires, used=False)
        elif isinstance(event, acc.LoginLinkUsed) and event.code_sha256 in self.links:
            link = self.links[event.code_sha256]
            self.links[event.code_sha256] = LoginLink(link.name, link.expires_at, used=True)

    def active(self, name: str) -> User | None:
        user = self.users.get(name)
        return user if user is not None and not user.revoked else None


class AccessBook:
    """The access list of one gateway: follows the log, answers who a token is, appends user changes.

    store_factory opens the event store (retried with backoff until it works); the book is usable
    for log users once it has read the log up to where it stood when the book connected.
    """

    def __init__(
        self,
        store_factory: Callable[[], Awaitable[EventStore]],
        bootstrap_token: str,
        bootstrap_name: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store_factory = store_factory
        self._store: EventStore | None = None
        self._bootstrap_digest = sha256(bootstrap_token)
        self.bootstrap_name = bootstrap_name
        self.clock = clock
        self.list = AccessList()
        self._loaded = asyncio.Event()
        self._moved = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow_forever(), name="access-list")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self._store is not None:
            with contextlib.suppress(Exception):
                await self._store.close()

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    async def _follow_forever(self) -> None:
        backoff = FIRST_BACKOFF_S
        while True:
            try:
                if self._store is None:
                    self._store = await self._store_factory()
                store = self._store
                target = await store.last_sequence(SUBJECTS)
                if target <= self.list.position:
                    self._loaded.set()
                async with contextlib.aclosing(store.follow(SUBJECTS, self.list.position + 1)) as events:
                    async for stored in events:
                        await self._apply(stored)
                        backoff = FIRST_BACKOFF_S
                        if stored.sequence >= target:
                            self._loaded.set()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # NATS away, stream not created yet: keep the list, retry
                log.warning("access list: cannot follow the log (%s); retrying in %.1f s", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _apply(self, stored: StoredEvent) -> None:
        self.list.apply(stored.sequence, stored.event)
        async with self._moved:
            self._moved.notify_all()

    async def _caught_up_to(self, sequence: int, timeout_s: float = 10.0) -> None:
        """Waits until the list has applied the event at sequence (read your own writes)."""

        async def moved_past() -> None:
            async with self._moved:
                await self._moved.wait_for(lambda: self.list.position >= sequence)

        try:
            await asyncio.wait_for(moved_past(), timeout_s)
        except TimeoutError:
            raise NotLoaded("the access list did not catch up with the log in time; try again") from None

    def _require_store(self) -> EventStore:
        if self._store is None or not self.loaded:
            raise NotLoaded(LOADING)
        return self._store

    async def _append(self, new: NewEvent) -> int:
        sequence = await self._require_store().append(new)
        await self._caught_up_to(sequence)
        return sequence

    # ---- who is calling -----------------------------------------------------------------------

    def principal_for_token(self, token: str) -> Principal | None:
        """The caller a bearer token names; None when it names nobody (raises NotLoaded while loading)."""
        digest = sha256(token)
        if hmac.compare_digest(digest, self._bootstrap_digest):
            return Principal(self.bootstrap_name, Role.ADMIN, "bootstrap", 0)
        found = self.list.by_token.get(digest)
        if found is None:
            if not self.loaded:
                raise NotLoaded(LOADING)
            return None
        user = self.list.active(found[0])
        if user is None:
            return None
        return Principal(user.name, user.role, "token", user.generation, credential=f"token:{found[1]}")

    def principal_for_session(self, name: str, generation: int) -> Principal | None:
        """The caller a (verified) session names, if that user still exists as the same user."""
        principal = self._session_of(name)
        if principal is None or principal.generation != generation:
            if not self.loaded:
                raise NotLoaded(LOADING)
            return None
        return principal

    def _session_of(self, name: str) -> Principal | None:
        """A session's caller as the access list knows them now (the bootstrap admin: generation 0)."""
        if name == self.bootstrap_name:
            return Principal(name, Role.ADMIN, "session", 0)
        user = self.list.active(name)
        return None if user is None else Principal(user.name, user.role, "session", user.generation)

    # ---- changes (admin) ----------------------------------------------------------------------

    def _check_name(self, name: str) -> None:
        if name == self.bootstrap_name:
            raise AccessError(f"{name!r} is the bootstrap admin (WB_ADMIN_NAME): choose another name")

    async def add_user(self, name: str, role: Role, by: str) -> tuple[str, str]:
        """Adds a user and issues their first API token; returns (token id, token): shown once."""
        self._check_name(name)
        store = self._require_store()
        subject = user_subject(name)
        last = await store.last_sequence(subject)
        await self._caught_up_to(last)
        if self.list.active(name) is not None:
            raise AccessError(f"user {name!r} exists already: change their role or revoke them first")
        added = acc.UserAdded(name=name, role=role.value, added_by=by, added_at=to_timestamp(self.clock()))
        try:
            await self._append(NewEvent(subject, added, expected_sequence=last))
        except ConcurrencyConflict:
            raise AccessError(f"user {name!r} was changed at the same time; try again") from None
        return await self.issue_token(name, by)

    async def issue_token(self, name: str, by: str) -> tuple[str, str]:
        """A new API token for an existing user (their other tokens keep working until revoked)."""
        self._existing(name)
        token = secrets.token_urlsafe(32)
        token_id = secrets.token_hex(4)
        issued = acc.TokenIssued(
            name=name, token_id=token_id, token_sha256=sha256(token), issued_by=by, issued_at=to_timestamp(self.clock())
        )
        await self._append(NewEvent(user_subject(name), issued))
        return token_id, token

    async def revoke_token(self, name: str, token_id: str, by: str) -> None:
        user = self._existing(name)
        if token_id not in user.tokens:
            raise UnknownUser(f"user {name!r} has no token {token_id!r}")
        revoked = acc.TokenRevoked(name=name, token_id=token_id, revoked_by=by, revoked_at=to_timestamp(self.clock()))
        await self._append(NewEvent(user_subject(name), revoked))

    async def change_role(self, name: str, role: Role, by: str) -> None:
        self._existing(name)
        changed = acc.UserRoleChanged(name=name, role=role.value, changed_by=by, changed_at=to_timestamp(self.clock()))
        await self._append(NewEvent(user_subject(name), changed))

    async def revoke_user(self, name: str, by: str) -> None:
        self._existing(name)
        revoked = acc.UserRevoked(name=name, revoked_by=by, revoked_at=to_timestamp(self.clock()))
        await self._append(NewEvent(user_subject(name), revoked))

    def _existing(self, name: str) -> User:
        self._check_name(name)
        self._require_store()
        user = self.list.active(name)
        if user is None:
            raise UnknownUser(f"no user {name!r}: `workbench users list` shows who there is")
        return user

    def users(self) -> list[User]:
        self._require_store()
        return sorted((u for u in self.list.users.values() if not u.revoked), key=lambda u: u.name)

    # ---- login links --------------------------------------------------------------------------

    async def issue_login_link(self, name: str, ttl: timedelta, by: str) -> tuple[str, datetime]:
        """A one-time login code for a user (or the bootstrap admin); returns (code, expiry)."""
        if name != self.bootstrap_name:
            self._existing(name)
        code = secrets.token_urlsafe(32)
        digest = sha256(code)
        now = self.clock()
        issued = acc.LoginLinkIssued(
            name=name,
            code_sha256=digest,
            expires_at=to_timestamp(now + ttl),
            issued_by=by,
            issued_at=to_timestamp(now),
        )
        await self._append(NewEvent(link_subject(digest), issued, expected_sequence=0))
        return code, now + ttl

    async def use_login_link(self, code: str) -> Principal | None:
        """The user a login code logs in, once: a second use, an expired or unknown code give None."""
        store = self._require_store()
        digest = sha256(code)
        subject = link_subject(digest)
        last = await store.last_sequence(subject)
        if last == 0:
            return None
        await self._caught_up_to(last)
        link = self.list.links.get(digest)
        if link is None or link.used or link.expires_at <= self.clock():
            return None
        used = acc.LoginLinkUsed(code_sha256=digest, used_at=to_timestamp(self.clock()))
        try:
            await self._append(NewEvent(subject, used, expected_sequence=last))
        except ConcurrencyConflict:
            return None  # used at the same moment by another request (or another gateway)
        return self._session_of(link.name)
