"""One interceptor maps every failure to a precise status and never leaks a trace."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway.interceptors import Access, Audience, Context
from gateway.server import ACCESS
from node.errors import ValidationError
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.pki import LAPD, Federation

SERVICE = "alpr.test.v1.ProbeService"
SECRET = "db password is hunter2"  # noqa: S105 (a marker that must never leave the node)


async def reject_plate(request: bytes, context: Context) -> bytes:
    raise ValidationError("plate", "must be 1 to 8 characters, got 12")


async def crash(request: bytes, context: Context) -> bytes:
    raise RuntimeError(SECRET)


async def crash_mid_stream(request: bytes, context: Context) -> AsyncIterator[bytes]:
    yield b"first"
    raise RuntimeError(SECRET)


HANDLERS = grpc.method_handlers_generic_handler(
    SERVICE,
    {
        "RejectPlate": grpc.unary_unary_rpc_method_handler(reject_plate),
        "Crash": grpc.unary_unary_rpc_method_handler(crash),
        "CrashMidStream": grpc.unary_stream_rpc_method_handler(crash_mid_stream),
    },
)


@pytest.fixture
def node(federation: Federation, tmp_path: Path) -> Iterator[RunningNode]:
    access = ACCESS | {
        f"/{SERVICE}/{name}": Access(Audience.OWN_AGENCY)
        for name in ("RejectPlate", "Crash", "CrashMidStream")
    }
    config = make_node(federation, tmp_path / "lapd", LAPD)
    with serving(config, access=access, extra_handlers=[HANDLERS]) as running:
        yield running


def call(channel: grpc.Channel, method: str) -> bytes:
    """Call a unary method of the probe service with raw bytes."""
    stub = channel.unary_unary(
        f"/{SERVICE}/{method}", request_serializer=None, response_deserializer=None
    )
    return bytes(stub(b"", timeout=10))


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    [detail] = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    return info


class TestErrorMapping:
    def test_validation_is_invalid_argument_naming_the_field(
        self, node: RunningNode, federation: Federation
    ) -> None:
        with node.channel(federation.client()) as channel, pytest.raises(grpc.RpcError) as raised:
            call(channel, "RejectPlate")
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert str(raised.value.details()) == "plate: must be 1 to 8 characters, got 12"
        info = error_info(raised.value)
        assert (info.reason, dict(info.metadata)) == ("INVALID_FIELD", {"field": "plate"})

    def test_unexpected_is_internal_with_an_error_id_and_no_detail(
        self, node: RunningNode, federation: Federation, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="alpr.rpc")
        with node.channel(federation.client()) as channel, pytest.raises(grpc.RpcError) as raised:
            call(channel, "Crash")
        assert raised.value.code() == grpc.StatusCode.INTERNAL
        assert SECRET not in str(raised.value.details())
        assert "Traceback" not in str(raised.value.details())
        error_id = error_info(raised.value).metadata["errorId"]
        assert error_id in str(raised.value.details())
        [record] = [
            r for r in caplog.records if getattr(r, "fields", {}).get("error_id") == error_id
        ]
        assert record.exc_info is not None
        assert SECRET in str(record.exc_info[1])

    def test_unexpected_mid_stream_ends_the_stream_internal(
        self, node: RunningNode, federation: Federation
    ) -> None:
        with node.channel(federation.client()) as channel:
            stream = iter(
                channel.unary_stream(
                    f"/{SERVICE}/CrashMidStream",
                    request_serializer=None,
                    response_deserializer=None,
                )(b"", timeout=10)
            )
            assert next(stream) == b"first"
            with pytest.raises(grpc.RpcError) as raised:
                next(stream)
        assert raised.value.code() == grpc.StatusCode.INTERNAL
        assert SECRET not in str(raised.value.details())

    def test_permission_denied_for_a_method_missing_from_the_table(
        self, federation: Federation, tmp_path: Path
    ) -> None:
        config = make_node(federation, tmp_path / "lapd", LAPD)
        with (
            serving(config, extra_handlers=[HANDLERS]) as running,
            running.channel(federation.client()) as channel,
            pytest.raises(grpc.RpcError) as raised,
        ):
            call(channel, "RejectPlate")
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(raised.value).reason == "PERMISSION_DENIED"
