"""Federated plate query: latency and throughput of SearchPartners fanned out to N partners.

A requesting node and up to the largest fan-out of partner nodes, each a real `alpr serve`
process on loopback (built with `alpr demo`'s pieces: a federation CA, mTLS, agreements
signed over AdminService). Each partner's cameras report `--reads` reads, the queried
plate among them `--seen` times. For each fan-out the requester gets agreements with that
many partners, and a detective (a user certificate) asks SearchService.SearchPartners
`--queries` times in a row after `--warmup` queries, then `--concurrency` detectives at
once for the queries per second.

Two baselines run in the same run, each the same fan-out:

- "plain" switches off much more than signing and receipts: a plain server per node (a
  child process of this script, serving the node's TLS files behind the node's own
  interceptors: access log, errors, identity from the certificate, authorization) whose
  SearchPartners asks every partner at once with the same deadline through the node's
  own `PartnerClient` transport, and whose QueryReads looks the plate up in the
  partner's own store (`ReadSearch.find`, the same call the real answer makes). It has
  no request or answer signatures, no receipt or acknowledgement, no audit events, no
  witnessing, and no agreement or nonce checks: the floor of any federated query.
- "faithful" is the issue's baseline in its words, "the same fan-out with signing and
  receipts switched off": the node's own server and query path (`create_server` with
  `Services.build`, in a child process per node, on a copy of the node's directory made
  after the agreements are signed), with exactly what `switch_off_signing_and_receipts`
  lists replaced in that process, and nothing in the node's code switched: no request,
  answer, receipt, acknowledgement or checkpoint signatures or their verification, no
  receipt or acknowledgement kept or delivered, no witnessing. Everything else runs as
  in the real node: both sides' audit events, the agreement, purpose, nonce, time and
  rate checks, the requests and reads put on file (SHR-5, SHR-7), the partner's rules.

The issue's target (signing and receipts at most 2x the baseline) is the ratio to the
faithful baseline; the ratio to the plain one says what the whole exchange protocol costs.

Each row also says the CPU time per query of every process that served it (the
requester's and its partners', from /proc), and the requester's alone: on a shared
machine it moves less than latency does.

Every partner node allows `ALPR_FEDERATION_QUERIES_PER_MINUTE` queries a minute (set high
here: the default 60 would refuse a benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import grpc.aio  # noqa: E402

from alpr.admin.v1 import hotlists_pb2  # noqa: E402
from alpr.common.v1 import envelope_pb2  # noqa: E402
from alpr.federation.v1 import exchange_pb2  # noqa: E402
from alpr.federation.v1 import federation_service_pb2 as fed_pb  # noqa: E402
from alpr.search.v1 import search_service_pb2 as search_pb  # noqa: E402
from alpr.search.v1 import search_service_pb2_grpc as search_grpc  # noqa: E402
from federation import receipting  # noqa: E402
from federation.acknowledgements import OwedAcknowledgements  # noqa: E402
from federation.client import PartnerClient, PartnerRefusedError, PartnerTimeoutError  # noqa: E402
from federation.envelope import Envelope, Verified  # noqa: E402
from federation.errors import InvalidEnvelopeError  # noqa: E402
from federation.exchange import (  # noqa: E402
    ACKNOWLEDGEMENT_TYPE,
    RECEIPT_TYPE,
    REQUEST_TYPE,
    ExchangeLedger,
)
from federation.gate import ExchangeGate  # noqa: E402
from federation.peers import Peer, PeerRegistry  # noqa: E402
from federation.plate_queries import ANSWER_TYPE, MAX_SHARED_READS  # noqa: E402
from federation.witness import Witness  # noqa: E402
from gateway import logs  # noqa: E402
from gateway.config import DATABASE_FILE, load_config  # noqa: E402
from gateway.demo import (  # noqa: E402
    PURPOSE,
    AgencySpec,
    RunningAgency,
    federate,
    report_reads,
    start_agency,
)
from gateway.interceptors import (  # noqa: E402
    AccessLogInterceptor,
    AuthorizationInterceptor,
    Context,
    ErrorInterceptor,
    IdentityInterceptor,
    current_caller,
)
from gateway.node_dir import open_node  # noqa: E402
from gateway.server import ACCESS, create_server  # noqa: E402
from gateway.services import Services  # noqa: E402
from node.audit import AuditLog  # noqa: E402
from node.audit_checkpoints import CheckpointStore  # noqa: E402
from node.clock import system_clock  # noqa: E402
from node.errors import UnavailableError  # noqa: E402
from node.pki import CertificateAuthority  # noqa: E402
from node.search import ReadSearch  # noqa: E402
from node.session_watch import SessionWatch  # noqa: E402
from node.sessions import Sessions  # noqa: E402
from node.signing import Signature  # noqa: E402
from node.store.capture_models import ReadRecord  # noqa: E402
from node.users import UserDirectory  # noqa: E402

PLATE = "7ABC123"
BATCH = 100
NOBODY = (hotlists_pb2.HotlistEntry(plate="0NONE00", list_type="stolen_vehicle"),)
REQUESTER = AgencySpec("requester", "CA0194200", "Requesting agency", "lapd", NOBODY)


def partner_spec(index: int) -> AgencySpec:
    """The `index`th partner agency, on LAPD's profile: it answers at once.

    LASD's and South Pasadena's profiles hold every partner query for their approver (SHR-5),
    which no benchmark of latency can include.
    """
    return AgencySpec(f"p{index:02d}", f"CA9{index:06d}", f"Partner {index}", "lapd", NOBODY)


@dataclass(frozen=True)
class Stats:
    """One row's measurements; CPU is per query, of every process serving it."""

    p50_ms: float
    p99_ms: float
    qps: float
    failed: int
    cpu_ms: float
    requester_cpu_ms: float


def cpu_seconds(pid: int) -> float:
    """The CPU time process `pid` has used, user and system (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The baseline: a plain node, no signing and no receipts.


def _plain_reads(records: Sequence[ReadRecord]) -> list[exchange_pb2.SharedRead]:
    shared = []
    for read in records:
        message = exchange_pb2.SharedRead(
            plate=read.plate,
            latitude=read.latitude or 0.0,
            longitude=read.longitude or 0.0,
            camera_id=read.camera_id,
            confidence=read.confidence,
        )
        message.captured_at.FromDatetime(read.captured_at)
        shared.append(message)
    return shared


class PlainFederation:
    """QueryReads with no checks, signatures, receipt or audit: the store lookup only."""

    def __init__(self, ori: str, search: ReadSearch) -> None:
        """Answer as `ori` from `search`."""
        self._ori = ori
        self._search = search

    async def query_reads(
        self, request: fed_pb.QueryReadsRequest, context: Context
    ) -> fed_pb.QueryReadsResponse:
        """The reads of the plate asked for, unsigned."""
        asked = exchange_pb2.ExchangeRequest.FromString(request.request.payload)
        reads, truncated = await asyncio.to_thread(
            self._search.find,
            asked.reads.plate,
            asked.reads.since.ToDatetime(UTC),
            asked.reads.until.ToDatetime(UTC),
            MAX_SHARED_READS,
        )
        answer = exchange_pb2.ReadAnswer(
            exchange_id=asked.exchange_id,
            responder_ori=self._ori,
            truncated=truncated,
            reads=_plain_reads(reads),
        )
        return fed_pb.QueryReadsResponse(
            answer=envelope_pb2.SignedEnvelope(
                payload=answer.SerializeToString(), payload_type=ANSWER_TYPE
            )
        )


class PlainSearch:
    """SearchPartners fanned out in parallel with a deadline, unsigned and unreceipted."""

    def __init__(self, ori: str, client: PartnerClient, partners: Sequence[Peer]) -> None:
        """Ask `partners` as `ori` through `client`."""
        self._ori = ori
        self._client = client
        self._partners = partners

    async def search_partners(
        self, request: search_pb.SearchPartnersRequest, context: Context
    ) -> search_pb.SearchPartnersResponse:
        """Every partner's reads of the plate, or what became of the query there."""
        deadline = (request.deadline_ms or 5000) / 1000
        user = current_caller().spiffe_id
        answers = await asyncio.gather(
            *(self._ask(peer, request, user, deadline) for peer in self._partners)
        )
        return search_pb.SearchPartnersResponse(
            partners=sorted(answers, key=lambda a: a.partner_ori)
        )

    async def _ask(
        self, peer: Peer, request: search_pb.SearchPartnersRequest, user: str, deadline: float
    ) -> search_pb.PartnerAnswer:
        asked = exchange_pb2.ExchangeRequest(
            exchange_id=str(uuid.uuid4()),
            requesting_ori=self._ori,
            responding_ori=peer.ori,
            requesting_user=user,
            purpose=request.purpose,
            case_number=request.case_number,
            nonce=os.urandom(16),
            reads=exchange_pb2.ReadQuery(
                plate=request.plate, since=request.since, until=request.until
            ),
        )
        asked.issued_at.GetCurrentTime()
        message = fed_pb.QueryReadsRequest(
            request=envelope_pb2.SignedEnvelope(
                payload=asked.SerializeToString(), payload_type=REQUEST_TYPE
            )
        )
        outcome = search_pb.PARTNER_OUTCOME_ANSWERED
        try:
            # The node's own transport to partners (channels, TLS, error mapping).
            got = await self._client._call(
                peer, lambda stub: stub.QueryReads(message, timeout=deadline)
            )
        except PartnerTimeoutError:
            outcome = search_pb.PARTNER_OUTCOME_TIMED_OUT
        except UnavailableError:
            outcome = search_pb.PARTNER_OUTCOME_UNAVAILABLE
        except PartnerRefusedError:
            outcome = search_pb.PARTNER_OUTCOME_REFUSED
        if outcome != search_pb.PARTNER_OUTCOME_ANSWERED:
            return search_pb.PartnerAnswer(partner_ori=peer.ori, outcome=outcome)
        answer = exchange_pb2.ReadAnswer.FromString(got.answer.payload)
        return search_pb.PartnerAnswer(
            partner_ori=peer.ori,
            outcome=outcome,
            reads=[
                search_pb.Read(
                    plate=read.plate,
                    confidence=read.confidence,
                    captured_at=read.captured_at,
                    camera_id=read.camera_id,
                    latitude=read.latitude,
                    longitude=read.longitude,
                )
                for read in answer.reads
            ],
            truncated=answer.truncated,
            exchange_id=asked.exchange_id,
        )


async def serve_plain(directory: Path, endpoints: dict[str, str]) -> None:
    """Serve the plain node for `directory`; its partners' plain servers are at `endpoints`."""
    logs.configure()
    config = load_config(directory, {})
    node = open_node(config, now=datetime.now(UTC))
    peers = PeerRegistry(node.engine, clock=system_clock)
    partners = [
        dataclasses.replace(peers.require(ori), endpoint=endpoints[ori]) for ori in endpoints
    ]
    audit = AuditLog(node.engine, clock=system_clock)  # ReadSearch.find audits nothing
    search = ReadSearch(node.engine, profile=node.profile, audit=audit, ori=config.ori)
    server = grpc.aio.server(
        interceptors=[
            AccessLogInterceptor(),
            ErrorInterceptor(),
            IdentityInterceptor(config.federation),
            AuthorizationInterceptor(
                config.ori,
                ACCESS,
                sessions=Sessions(
                    UserDirectory(node.engine, clock=system_clock),
                    audit,
                    signer=node.signer,
                    ori=config.ori,
                    clock=system_clock,
                ),
                watch=SessionWatch(audit, clock=system_clock),
                require_login=False,
                gate=ExchangeGate(peers, audit, ori=config.ori),
            ),
        ],
        options=[("grpc.max_receive_message_length", config.max_message_bytes)],
    )
    plain_federation = PlainFederation(config.ori, search)
    plain_search = PlainSearch(config.ori, PartnerClient(node.tls.channel_credentials()), partners)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "alpr.federation.v1.FederationService",
                {
                    "QueryReads": grpc.unary_unary_rpc_method_handler(
                        plain_federation.query_reads,
                        request_deserializer=fed_pb.QueryReadsRequest.FromString,
                        response_serializer=fed_pb.QueryReadsResponse.SerializeToString,
                    )
                },
            ),
            grpc.method_handlers_generic_handler(
                "alpr.search.v1.SearchService",
                {
                    "SearchPartners": grpc.unary_unary_rpc_method_handler(
                        plain_search.search_partners,
                        request_deserializer=search_pb.SearchPartnersRequest.FromString,
                        response_serializer=search_pb.SearchPartnersResponse.SerializeToString,
                    )
                },
            ),
        )
    )
    port = server.add_secure_port("127.0.0.1:0", node.tls.server_credentials())
    await server.start()
    print(json.dumps({"address": f"127.0.0.1:{port}"}), flush=True)
    await server.wait_for_termination()


# The faithful baseline: the node's own query path, signing and receipts switched off.

NO_SIGNATURE = Signature("", b"")


def _unsigned(
    cls: type[Envelope], payload: bytes, payload_type: str, signer: object, *,
    prehashed: bool = False,
) -> Envelope:  # fmt: skip
    return cls(payload, payload_type, (NO_SIGNATURE,))


def _unverified(
    self: Envelope, keys: object, threshold: int, payload_type: str, *, prehashed: bool = False
) -> Verified:
    if self.payload_type != payload_type:
        raise InvalidEnvelopeError(f"expected a {payload_type}, got a {self.payload_type}")
    return Verified(self.payload, ())


async def _not_witnessed(
    self: Witness, peer: Peer, notes: Sequence[bytes], *_: object
) -> list[None]:
    return [None] * len(notes)


def switch_off_signing_and_receipts() -> None:
    """In this process only: no signatures, receipts, acknowledgements or witnessing.

    Envelopes (requests, answers) are neither signed nor verified (their type still is);
    the checkpoint, receipt and acknowledgement are neither signed, verified, kept nor
    delivered; no checkpoint is witnessed. Every audit event and every other check runs.
    """
    replaced: list[tuple[object, str, object]] = [
        (Envelope, "sign", classmethod(_unsigned)),
        (Envelope, "verify", _unverified),
        (CheckpointStore, "sign", lambda self, head, session=None: b""),
        (receipting, "sign_receipt",
         lambda signer, **_: Envelope(b"", RECEIPT_TYPE, (NO_SIGNATURE,))),
        (receipting, "verify_receipt", lambda envelope, responder, **_: None),
        (receipting, "sign_acknowledgement",
         lambda signer, **_: Envelope(b"", ACKNOWLEDGEMENT_TYPE, (NO_SIGNATURE,))),
        (ExchangeLedger, "record", lambda self, **_: None),
        (OwedAcknowledgements, "owe", lambda self, peer, acknowledgements: None),
        (Witness, "observe_many", _not_witnessed),
    ]  # fmt: skip
    for owner, name, value in replaced:
        setattr(owner, name, value)


async def serve_faithful(directory: Path, endpoints: dict[str, str]) -> None:
    """Serve the node copied to `directory` on its own path, signing and receipts switched off.

    Its partners' faithful servers are at `endpoints` (kept in the copy's peer registry).
    """
    switch_off_signing_and_receipts()
    logs.configure()
    config = load_config(directory, os.environ | {"ALPR_SERVER_LISTEN": "127.0.0.1:0"})
    node = open_node(config, now=datetime.now(UTC))
    services = Services.build(node, clock=system_clock)
    for ori, endpoint in endpoints.items():
        services.peers.update(ori, {"endpoint": endpoint})
    server, port, _ = create_server(node, services=services)
    await server.start()
    print(json.dumps({"address": f"127.0.0.1:{port}"}), flush=True)
    await server.wait_for_termination()


def copy_node(source: Path, target: Path) -> Path:
    """A copy of the node directory `source` at `target`, its database copied whole; `target`."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(f"{DATABASE_FILE}*", "*.log"))
    with (
        contextlib.closing(sqlite3.connect(source / DATABASE_FILE)) as original,
        contextlib.closing(sqlite3.connect(target / DATABASE_FILE)) as copy,
    ):
        original.backup(copy)
    return target


@contextlib.contextmanager
def baseline_node(
    kind: str, directory: Path, endpoints: dict[str, str]
) -> Iterator[tuple[str, int]]:
    """A `kind` (plain, faithful) server for the node in `directory`, in a child process.

    Yields its address and process id.
    """
    process = subprocess.Popen(
        [sys.executable, __file__, f"--{kind}", str(directory), json.dumps(endpoints)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line:
            raise RuntimeError(f"the {kind} server for {directory} did not start")
        yield str(json.loads(line)["address"]), process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


# Measuring.


def _request(deadline_ms: int) -> search_pb.SearchPartnersRequest:
    now = datetime.now(UTC)
    request = search_pb.SearchPartnersRequest(
        plate=PLATE, purpose=PURPOSE, case_number="DR 26-0117734", deadline_ms=deadline_ms
    )
    request.since.FromDatetime(now - timedelta(days=1))
    request.until.FromDatetime(now + timedelta(days=1))
    return request


def measure(
    address: str, pids: Sequence[int], credentials: grpc.ChannelCredentials, *, fan_out: int,
    seen: int, queries: int, warmup: int, concurrency: int, deadline_ms: int,
) -> Stats:  # fmt: skip
    """Latencies of `queries` sequential queries after `warmup`, then the rate at `concurrency`.

    `pids` are the processes that serve a query, the requester's first: their CPU time
    over all the queries, per query.
    """
    cpu_before = [cpu_seconds(pid) for pid in pids]
    request = _request(deadline_ms)
    failed = 0
    lock = threading.Lock()

    def ask(stub: search_grpc.SearchServiceStub) -> float:
        nonlocal failed
        began = time.perf_counter()
        answer = stub.SearchPartners(request, timeout=60)
        took = time.perf_counter() - began
        good = len(answer.partners) == fan_out and all(
            p.outcome == search_pb.PARTNER_OUTCOME_ANSWERED and len(p.reads) == seen
            for p in answer.partners
        )
        if not good:
            with lock:
                failed += 1
        return took

    with grpc.secure_channel(address, credentials) as channel:
        stub = search_grpc.SearchServiceStub(channel)
        for _ in range(warmup):
            ask(stub)
        latencies = sorted(ask(stub) for _ in range(queries))
        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda _: ask(stub), range(queries)))
        qps = queries / (time.perf_counter() - began)
    used = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
    per_query = 1000 / (warmup + 2 * queries)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return Stats(statistics.median(latencies) * 1000, p99 * 1000, qps, failed,
                 sum(used) * per_query, used[0] * per_query)  # fmt: skip


def measure_faithful(
    base: Path, requester: RunningAgency, partners: Sequence[RunningAgency],
    credentials: grpc.ChannelCredentials, options: dict[str, int],
) -> Stats:  # fmt: skip
    """The faithful baseline: the nodes as federated now, copied to `base`, served so."""
    with contextlib.ExitStack() as serving:
        served = {
            p.spec.ori: serving.enter_context(
                baseline_node("faithful", copy_node(p.directory, base / p.spec.key), {})
            )
            for p in partners
        }
        copied = copy_node(requester.directory, base / requester.spec.key)
        endpoints = {ori: address for ori, (address, _) in served.items()}
        address, pid = serving.enter_context(baseline_node("faithful", copied, endpoints))
        pids = [pid, *(partner_pid for _, partner_pid in served.values())]
        return measure(address, pids, credentials, **options)


def run(args: argparse.Namespace, base: Path) -> list[tuple[int, Stats, Stats, Stats]]:
    """Build the federation in `base` and measure each fan-out, real and both baselines."""
    os.environ["ALPR_FEDERATION_QUERIES_PER_MINUTE"] = str(1_000_000)
    os.environ["ALPR_CAPTURE_READS_PER_SECOND"] = str(1_000_000)  # seeding, not a camera
    ca = CertificateAuthority.create("demo.alpr", now=datetime.now(UTC))
    widest = max(args.partners)
    specs = [REQUESTER, *(partner_spec(i) for i in range(1, widest + 1))]
    nodes: list[RunningAgency] = []
    rows = []
    try:
        nodes.extend(start_agency(spec, base / spec.key, ca) for spec in specs)
        requester, partners = nodes[0], nodes[1:]
        plates = [f"{i % 10}XYZ{i:03d}"[:7] for i in range(args.reads - args.seen)]
        reads = [*plates, *[PLATE] * args.seen]
        for partner in partners:
            for start in range(0, len(reads), BATCH):  # SubmitReads takes 100 at a time
                report_reads(partner, "cam-1", reads[start : start + BATCH])
        with contextlib.ExitStack() as plain:
            plain_partners = {
                p.spec.ori: plain.enter_context(baseline_node("plain", p.directory, {}))
                for p in partners
            }
            federated = 0
            for fan_out in sorted(args.partners):
                federate([(requester, p) for p in partners[federated:fan_out]])
                federated = fan_out
                asked = {p.spec.ori: plain_partners[p.spec.ori][0] for p in partners[:fan_out]}
                credentials = requester.credentials["detective"].channel_credentials()
                options = {"fan_out": fan_out, "seen": args.seen, "queries": args.queries,
                           "warmup": args.warmup, "concurrency": args.concurrency,
                           "deadline_ms": args.deadline_ms}  # fmt: skip
                pids = [node.process.pid for node in nodes[: fan_out + 1]]
                real = measure(requester.address, pids, credentials, **options)
                with baseline_node("plain", requester.directory, asked) as (address, pid):
                    pids = [pid, *(plain_partners[ori][1] for ori in asked)]
                    plain_stats = measure(address, pids, credentials, **options)
                faithful = measure_faithful(
                    base / f"faithful-{fan_out}", requester, partners[:fan_out], credentials,
                    options,
                )  # fmt: skip
                rows.append((fan_out, real, plain_stats, faithful))
                print(f"  measured {fan_out} partners", file=sys.stderr, flush=True)
    finally:
        for node in nodes:
            node.process.send_signal(signal.SIGTERM)
        for node in nodes:
            node.process.wait(timeout=30)
    return rows


def main() -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partners", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--reads", type=int, default=1000, help="reads each partner holds")
    parser.add_argument("--seen", type=int, default=3, help="how often the queried plate is seen")
    parser.add_argument("--queries", type=int, default=200, help="sequential queries measured")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4, help="detectives asking at once")
    parser.add_argument("--deadline-ms", type=int, default=5000)
    parser.add_argument("--keep", type=Path, help="build the nodes here and leave them")
    parser.add_argument("--plain", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--faithful", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for kind, serve in (("plain", serve_plain), ("faithful", serve_faithful)):
        if getattr(args, kind):
            directory, endpoints = getattr(args, kind)
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(serve(Path(directory), json.loads(endpoints)))
            return 0
    print(f"federated_query on {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: "
          f"{args.reads} reads a partner, plate seen {args.seen}x, {args.queries} sequential "
          f"queries after {args.warmup}, QPS at {args.concurrency} at once")  # fmt: skip
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        rows = run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            rows = run(args, Path(scratch))
    print(f"{'partners':>8}  {'case':<22}{'p50 ms':>9}{'p99 ms':>9}{'QPS':>8}{'failed':>8}"
          f"{'CPU ms/q':>10}{'requester':>11}"
          f"{'p99 x plain':>13}{'p99 x faithful':>16}")  # fmt: skip
    for fan_out, real, plain, faithful in rows:
        cases = (
            ("signed + receipts", real),
            ("baseline (plain)", plain),
            ("baseline (faithful)", faithful),
        )
        for name, stats in cases:
            ratios = (
                f"{real.p99_ms / plain.p99_ms:>13.1f}{real.p99_ms / faithful.p99_ms:>16.1f}"
                if stats is real
                else ""
            )
            print(f"{fan_out:>8}  {name:<22}{stats.p50_ms:>9.1f}{stats.p99_ms:>9.1f}"
                  f"{stats.qps:>8.1f}{stats.failed:>8}{stats.cpu_ms:>10.1f}"
                  f"{stats.requester_cpu_ms:>11.1f}{ratios}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
