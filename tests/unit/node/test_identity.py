"""ORIs and the SPIFFE IDs that carry them (SEC-1 rests on parsing these strictly)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from node.errors import ValidationError
from node.identity import STATE_CODES, Principal, PrincipalKind, validate_ori

INVALID_ORIS = {
    "too short": "CA019420",
    "too long": "CA01942000",
    "lowercase": "ca0194200",
    "unknown state": "ZZ0194200",
    "punctuation": "CA01942-0",
    "space": "CA 194200",
    "empty": "",
    "unicode digit": "CA019420\u0661",
}

INVALID_SPIFFE_IDS = {
    "other scheme": "https://test.alpr/agency/CA0194200",
    "no agency": "spiffe://test.alpr",
    "wrong segment": "spiffe://test.alpr/agencies/CA0194200",
    "bad ori": "spiffe://test.alpr/agency/CA01942",
    "unknown kind": "spiffe://test.alpr/agency/CA0194200/robot/r2",
    "empty name": "spiffe://test.alpr/agency/CA0194200/user/",
    "trailing part": "spiffe://test.alpr/agency/CA0194200/user/jdoe/x",
    "uppercase domain": "spiffe://Test.alpr/agency/CA0194200",
    "path in name": "spiffe://test.alpr/agency/CA0194200/user/../admin",
}

oris = st.builds(
    lambda state, tail: state + tail,
    st.sampled_from(sorted(STATE_CODES)),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=7, max_size=7),
)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True)
domains = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?", fullmatch=True)


class TestOri:
    def test_succeeds(self) -> None:
        assert validate_ori("CA0194200") == "CA0194200"

    @pytest.mark.parametrize("value", INVALID_ORIS.values(), ids=INVALID_ORIS.keys())
    def test_fails_when_malformed(self, value: str) -> None:
        with pytest.raises(ValidationError) as raised:
            validate_ori(value)
        assert raised.value.field == "ori"


class TestPrincipal:
    @given(domains, oris, st.sampled_from(PrincipalKind), names)
    @example("test.alpr", "CA0194200", PrincipalKind.NODE, "")
    @example("socal.alpr", "NY030031X", PrincipalKind.DEVICE, "car-17")
    def test_sec1_spiffe_id_round_trips(
        self, domain: str, ori: str, kind: PrincipalKind, name: str
    ) -> None:
        principal = Principal(domain, ori, kind, "" if kind is PrincipalKind.NODE else name)
        assert Principal.from_spiffe_id(principal.spiffe_id) == principal

    @pytest.mark.parametrize("uri", INVALID_SPIFFE_IDS.values(), ids=INVALID_SPIFFE_IDS.keys())
    def test_fails_when_spiffe_id_malformed(self, uri: str) -> None:
        with pytest.raises(ValidationError):
            Principal.from_spiffe_id(uri)

    def test_fails_when_a_node_has_a_name(self) -> None:
        with pytest.raises(ValidationError, match="no name"):
            Principal("test.alpr", "CA0194200", PrincipalKind.NODE, "x")
