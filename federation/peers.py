"""The peer registry: which partner nodes exist, where they are, and which keys they hold."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from node.clock import Clock
from node.ed25519 import PUBLIC_KEY_BYTES, Ed25519Key, fingerprint
from node.errors import AlreadyExistsError, NotFoundError, PreconditionError, ValidationError
from node.identity import Principal, PrincipalKind, validate_ori
from node.store.models import utc
from node.store.sharing import AgreementRecord, PeerRecord, RetiredPeerKey

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_NAME = 200
MAX_ENDPOINT = 300


@dataclass(frozen=True, kw_only=True)
class Peer:
    """A partner node, validated."""

    ori: str
    name: str
    endpoint: str
    spiffe_id: str
    signing_public_key: bytes
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        """Validate every field.

        Raises:
            ValidationError: A field is malformed, or the SAN names another agency or no node.
        """
        validate_ori(self.ori)
        if not self.name.strip() or len(self.name) > MAX_NAME:
            raise ValidationError("name", f"must be 1 to {MAX_NAME} characters")
        host, _, port = self.endpoint.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValidationError("endpoint", f"{self.endpoint!r} is not host:port")
        if len(self.endpoint) > MAX_ENDPOINT:
            raise ValidationError("endpoint", f"must be at most {MAX_ENDPOINT} characters")
        try:
            principal = Principal.from_spiffe_id(self.spiffe_id)
        except ValidationError as error:
            raise ValidationError("spiffe_id", error.problem) from error
        if principal.kind is not PrincipalKind.NODE or principal.ori != self.ori:
            raise ValidationError("spiffe_id", f"must name the node of {self.ori}")
        if len(self.signing_public_key) != PUBLIC_KEY_BYTES:
            raise ValidationError(
                "signing_public_key", f"must be {PUBLIC_KEY_BYTES} bytes of an Ed25519 key"
            )

    @property
    def key(self) -> Ed25519Key:
        """The key the partner signs with."""
        return Ed25519Key(self.signing_public_key)

    @property
    def fingerprint(self) -> str:
        """The signing key's fingerprint, for the out-of-band check."""
        return fingerprint(self.signing_public_key)

    @property
    def federation(self) -> str:
        """The trust domain of the partner's SAN."""
        return Principal.from_spiffe_id(self.spiffe_id).federation


@dataclass(frozen=True)
class PeerPage:
    """One page of peers, and the token of the next (empty at the end)."""

    peers: list[Peer]
    next_page_token: str


_UPDATABLE = ("name", "endpoint", "spiffe_id", "signing_public_key")


class PeerRegistry:
    """Adds, lists, updates and removes partner nodes in the node's store."""

    def __init__(self, engine: Engine, *, clock: Clock) -> None:
        """Keep peers in `engine`'s database, stamping changes with `clock`."""
        self._engine = engine
        self._clock = clock

    def add(self, peer: Peer) -> Peer:
        """Register a partner.

        Raises:
            AlreadyExistsError: A peer with that ORI is registered.
        """
        now = self._clock()
        with Session(self._engine) as session:
            if session.get(PeerRecord, peer.ori) is not None:
                raise AlreadyExistsError(f"peer {peer.ori} is already registered")
            record = PeerRecord(
                ori=peer.ori,
                name=peer.name,
                endpoint=peer.endpoint,
                spiffe_id=peer.spiffe_id,
                signing_public_key=peer.signing_public_key,
                created_at=now,
                updated_at=now,
            )
            session.add(record)
            session.commit()
            return _to_peer(record)

    def get(self, ori: str) -> Peer | None:
        """The peer registered for `ori`, if any."""
        with Session(self._engine) as session:
            record = session.get(PeerRecord, ori)
            return _to_peer(record) if record else None

    def require(self, ori: str) -> Peer:
        """The peer registered for `ori`.

        Raises:
            NotFoundError: None is.
        """
        peer = self.get(ori)
        if peer is None:
            raise NotFoundError(f"no peer {ori} is registered")
        return peer

    def list(self, *, page_size: int = 0, page_token: str = "") -> PeerPage:
        """Peers in ORI order, a page at a time (AIP-158).

        Raises:
            ValidationError: `page_size` is negative or `page_token` is not one we issued.
        """
        if page_size < 0:
            raise ValidationError("page_size", "must not be negative")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _decode_token(page_token)
        with Session(self._engine) as session:
            query = select(PeerRecord).where(col(PeerRecord.ori) > after)
            records = session.exec(query.order_by(col(PeerRecord.ori)).limit(size + 1)).all()
            peers = [_to_peer(record) for record in records[:size]]
        token = _encode_token(peers[-1].ori) if len(records) > size else ""
        return PeerPage(peers, token)

    def every(self) -> tuple[Peer, ...]:
        """Every peer, in ORI order."""
        peers: tuple[Peer, ...] = ()
        token = ""
        while True:
            page = self.list(page_size=MAX_PAGE_SIZE, page_token=token)
            peers += tuple(page.peers)
            token = page.next_page_token
            if not token:
                return peers

    def update(self, ori: str, changes: Mapping[str, object]) -> Peer:
        """Change some fields of a peer: any of name, endpoint, spiffe_id, signing_public_key.

        Raises:
            ValidationError: A field cannot be changed, or the result is invalid.
            NotFoundError: No such peer.
        """
        unknown = set(changes) - set(_UPDATABLE)
        if unknown:
            raise ValidationError("update_mask", f"cannot change {', '.join(sorted(unknown))}")
        with Session(self._engine) as session:
            record = session.get(PeerRecord, ori)
            if record is None:
                raise NotFoundError(f"no peer {ori} is registered")
            merged = Peer(**{**_to_peer(record).__dict__, **changes})  # validates
            now = self._clock()
            if merged.signing_public_key != record.signing_public_key:
                session.add(
                    RetiredPeerKey(
                        ori=ori, signing_public_key=record.signing_public_key, retired_at=now
                    )
                )
            for name in changes:
                setattr(record, name, getattr(merged, name))
            record.updated_at = now
            session.add(record)
            session.commit()
            return _to_peer(record)

    def keys_in_force(self, ori: str, at: datetime) -> tuple[Ed25519Key, ...]:
        """The keys `ori` may have signed with `at`: its current one, and any replaced since.

        Raises:
            NotFoundError: No such peer.
        """
        current = self.require(ori).key
        with Session(self._engine) as session:
            retired = session.exec(
                select(RetiredPeerKey.signing_public_key).where(
                    col(RetiredPeerKey.ori) == ori, col(RetiredPeerKey.retired_at) > at
                )
            ).all()
        return (current, *(Ed25519Key(key) for key in retired))

    def remove(self, ori: str) -> None:
        """Forget a peer that never had an agreement with us.

        A peer with agreements stays: its record names the key that signed them, which
        auditors need as long as the agreements are kept.

        Raises:
            NotFoundError: No such peer.
            PreconditionError: We hold agreements with it.
        """
        with Session(self._engine) as session:
            record = session.get(PeerRecord, ori)
            if record is None:
                raise NotFoundError(f"no peer {ori} is registered")
            held = session.exec(
                select(func.count()).where(col(AgreementRecord.partner_ori) == ori)
            ).one()
            if held:
                raise PreconditionError(
                    f"we hold {held} agreement(s) with {ori}; revoke them, the record stays"
                )
            session.delete(record)
            session.commit()


def _to_peer(record: PeerRecord) -> Peer:
    return Peer(
        ori=record.ori,
        name=record.name,
        endpoint=record.endpoint,
        spiffe_id=record.spiffe_id,
        signing_public_key=record.signing_public_key,
        created_at=utc(record.created_at),
        updated_at=utc(record.updated_at),
    )


def _encode_token(last_ori: str) -> str:
    return base64.urlsafe_b64encode(f"peer:{last_ori}".encode()).decode()


def _decode_token(token: str) -> str:
    if not token:
        return ""
    try:
        kind, _, last = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    except (ValueError, UnicodeDecodeError) as error:
        raise ValidationError("page_token", "is not a token this node issued") from error
    if kind != "peer" or not last:
        raise ValidationError("page_token", "is not a token this node issued")
    return last
