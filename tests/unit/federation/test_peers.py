"""The peer registry on SQLite and PostgreSQL: what a partner record must say, and paging."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from federation.agreements import AgreementBook
from federation.peers import Peer, PeerRegistry
from federation.terms import Grant
from node.ed25519 import Ed25519Signer
from node.errors import AlreadyExistsError, NotFoundError, PreconditionError, ValidationError
from tests.support.clock import START, ManualClock

KEY = Ed25519Signer.generate().public_key.public_bytes
LASD = Peer(
    ori="CA0190000",
    name="LA County Sheriff",
    endpoint="node.lasd.example:50051",
    spiffe_id="spiffe://test.alpr/agency/CA0190000",
    signing_public_key=KEY,
)
INVALID = {
    "ori": ({"ori": "CA01"}, "ori"),
    "empty name": ({"name": " "}, "name"),
    "no port": ({"endpoint": "node.lasd.example"}, "endpoint"),
    "port zero": ({"endpoint": "node.lasd.example:0"}, "endpoint"),
    "SAN of another agency": ({"spiffe_id": "spiffe://test.alpr/agency/CA0194200"}, "spiffe_id"),
    "SAN of a user": ({"spiffe_id": "spiffe://test.alpr/agency/CA0190000/user/x"}, "spiffe_id"),
    "short key": ({"signing_public_key": b"short"}, "signing_public_key"),
}


@pytest.fixture
def registry(engine: Engine, clock: ManualClock) -> PeerRegistry:
    return PeerRegistry(engine, clock=clock)


class TestPeer:
    @pytest.mark.parametrize(("changes", "field"), INVALID.values(), ids=INVALID.keys())
    def test_fails_on_an_invalid_record(self, changes: dict[str, object], field: str) -> None:
        with pytest.raises(ValidationError) as raised:
            Peer(**(asdict(LASD) | changes))
        assert raised.value.field == field


class TestRegistry:
    def test_succeeds_add_get_update_remove(
        self, registry: PeerRegistry, clock: ManualClock
    ) -> None:
        added = registry.add(LASD)
        assert (added.created_at, added.fingerprint) == (START, LASD.fingerprint)
        clock.advance(timedelta(hours=1))
        moved = registry.update(LASD.ori, {"endpoint": "node2.lasd.example:443"})
        assert (moved.endpoint, moved.updated_at, moved.created_at) == (
            "node2.lasd.example:443",
            START + timedelta(hours=1),
            START,
        )
        registry.remove(LASD.ori)
        assert registry.get(LASD.ori) is None

    def test_fails_on_a_duplicate(self, registry: PeerRegistry) -> None:
        registry.add(LASD)
        with pytest.raises(AlreadyExistsError):
            registry.add(LASD)

    def test_fails_updating_a_field_that_is_not_updatable_or_to_an_invalid_value(
        self, registry: PeerRegistry
    ) -> None:
        registry.add(LASD)
        with pytest.raises(ValidationError, match="cannot change ori"):
            registry.update(LASD.ori, {"ori": "CA0194200"})
        with pytest.raises(ValidationError):
            registry.update(LASD.ori, {"endpoint": "nowhere"})
        with pytest.raises(NotFoundError):
            registry.update("CA0194200", {"name": "x"})

    def test_succeeds_paging_in_ori_order(self, registry: PeerRegistry) -> None:
        oris = [f"CA01{n:05d}" for n in range(5)]
        for ori in reversed(oris):
            registry.add(
                Peer(**(asdict(LASD) | {"ori": ori, "spiffe_id": f"spiffe://t.alpr/agency/{ori}"}))
            )
        seen, token = [], ""
        while True:
            page = registry.list(page_size=2, page_token=token)
            seen += [peer.ori for peer in page.peers]
            token = page.next_page_token
            if not token:
                break
        assert seen == oris

    @pytest.mark.parametrize(("size", "token"), [(-1, ""), (0, "not-a-token"), (0, "cGVlcg==")])
    def test_fails_on_a_bad_page_request(
        self, registry: PeerRegistry, size: int, token: str
    ) -> None:
        with pytest.raises(ValidationError):
            registry.list(page_size=size, page_token=token)

    def test_fails_removing_a_peer_we_hold_agreements_with(
        self, registry: PeerRegistry, engine: Engine, clock: ManualClock
    ) -> None:
        registry.add(LASD)
        signer = Ed25519Signer.generate()
        book = AgreementBook(
            engine, ori="CA0194200", federation="test.alpr", signer=signer, peers=registry,
            clock=clock,
        )  # fmt: skip
        book.create(
            partner_ori=LASD.ori, starts_at=START, sunsets_at=START + timedelta(days=1),
            we_grant={Grant.RECEIVE_HOTLISTS}, they_grant=set(), purposes=["x"],
        )  # fmt: skip
        with pytest.raises(PreconditionError, match="agreement"):
            registry.remove(LASD.ori)
        assert registry.get(LASD.ori) is not None

    def test_aud6_a_replaced_key_stays_in_force_for_what_was_signed_before(
        self, registry: PeerRegistry, clock: ManualClock
    ) -> None:
        registry.add(LASD)
        signed_before = clock()
        clock.advance(timedelta(days=30))
        rotated = Ed25519Signer.generate().public_key.public_bytes
        registry.update(LASD.ori, {"name": "LASD"})  # the key unchanged: nothing retired
        registry.update(LASD.ori, {"signing_public_key": rotated})
        signed_after = clock() + timedelta(seconds=1)
        before = registry.keys_in_force(LASD.ori, at=signed_before)
        after = registry.keys_in_force(LASD.ori, at=signed_after)
        assert [key.public_bytes for key in before] == [rotated, KEY]
        assert [key.public_bytes for key in after] == [rotated]
        with pytest.raises(NotFoundError):
            registry.keys_in_force("CA0010000", at=signed_after)
