"""`alpr demo`: three agencies federated on loopback, end to end, in seconds.

Creates a federation CA and three agency nodes (LAPD, LA County Sheriff, South
Pasadena PD, each with its own policy profile, directory and SQLite file), serves each
as a real `alpr serve` process, and then, as each agency's operators, cameras, patrol
car and detective would, over mTLS gRPC only:

1. registers the partners and signs agreements between every pair;
2. each agency publishes a hotlist and pulls its partners' (signed, sealed, receipted);
3. a patrol car streams hits from LAPD while LAPD's cameras report plates: a partner's
   stolen car, a partner's partial AMBER plate and an own entry raise hits at once;
   another camera sends three synthetic frames (`demo_frames/`, drawn by
   scripts/synth_plates.py), which the node reads with its shipped models, one of them a
   partner's second stolen car; the officer records a disposition;
4. LASD's and South Pasadena's profiles hold each partner query for their approver (SHR-5),
   so each node's operator, its first system administrator, logs in and enrols the approver
   the profile names (LASD's custodian of records, South Pasadena's commander, a system
   administrator) with training and the policy acknowledgement recorded (ACC-2);
5. a detective asks every partner where a plate was seen: both answer "pending approval"
   with a reference; each approver logs in, reviews the request (who asked, the plate and
   window, purpose and case) and approves it with a reason; the detective lists the
   queries held for them (SearchService.ListHeldQueries), collects both answers
   (CollectPartnerAnswer, receipted both ways, AUD-6) and sees where the plate was seen;
6. the nodes stop, LAPD first (it gives partners the acknowledgements it still owes), and
   every receipt is verified on all three, and every audit log (`audit verify`).

It prints each step as it goes and a summary, and leaves the directories for
inspection. One camera reports plates it read itself (CaptureService.SubmitReads), the
other sends frames (CaptureService.SubmitFrames); without the ``capture`` extra the node
refuses frames and the demo says so and goes on. No network beyond loopback is used.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from alpr.admin.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    agreements_pb2,
    hotlists_pb2,
    partner_hotlists_pb2,
    partner_requests_pb2,
    peers_pb2,
    users_pb2,
)
from alpr.capture.v1 import capture_service_pb2 as capture_pb
from alpr.capture.v1 import capture_service_pb2_grpc as capture_grpc
from alpr.federation.v1 import agreement_pb2
from alpr.patrol.v1 import patrol_service_pb2 as patrol_pb
from alpr.patrol.v1 import patrol_service_pb2_grpc as patrol_grpc
from alpr.search.v1 import search_service_pb2 as search_pb
from alpr.search.v1 import search_service_pb2_grpc as search_grpc
from gateway.cli_users import bootstrap_administrator
from gateway.config import NodeConfig
from gateway.interceptors import SESSION_METADATA
from gateway.node_dir import init_node
from gateway.tls import TLSConfig
from node.errors import NodeError
from node.identity import Principal, PrincipalKind
from node.pki import CertificateAuthority
from node.profile import Role

FEDERATION = "demo.alpr"
PURPOSE = "Criminal investigations or proceedings"
TIMEOUT = 30
START_SECONDS = 60
FRAMES = Path(__file__).parent / "demo_frames"
HITS_FROM_READS = 3
GRANTS = [agreement_pb2.GRANT_RECEIVE_HOTLISTS, agreement_pb2.GRANT_ASK_PLATE_QUERIES]
PASSWORD = "demo password, never reuse"  # noqa: S105 (the demo's throwaway accounts)
CASE = "DR 26-0117734"
Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class AgencySpec:
    """One demo agency: ORI, name, policy profile, what it lists, and who approves requests.

    `approver` names the user, and the profile's approver role they hold, who decides
    partners' requests where the profile holds each one for approval (SHR-5).
    """

    key: str
    ori: str
    name: str
    profile: str
    listed: tuple[hotlists_pb2.HotlistEntry, ...]
    approver: tuple[str, Role] | None = None


AGENCIES = (
    AgencySpec(
        "lapd", "CA0194200", "Los Angeles Police Department", "lapd",
        (hotlists_pb2.HotlistEntry(plate="6TRK999", list_type="wanted_person",
                                   reason="Warrant 26-F-0112", contact="LAPD RACR"),),
    ),
    AgencySpec(
        "lasd", "CA0190000", "Los Angeles County Sheriff's Department", "lasd",
        (hotlists_pb2.HotlistEntry(plate="7ABC123", list_type="stolen_vehicle",
                                   reason="Stolen 2026-11-28, Lakewood", contact="LASD Auto Theft"),
         hotlists_pb2.HotlistEntry(plate="3LBY007", list_type="stolen_vehicle",
                                   reason="Stolen 2026-11-29, Compton", contact="LASD Auto Theft")),
        ("records", Role.CUSTODIAN_OF_RECORDS),
    ),
    AgencySpec(
        "spd", "CA0193300", "South Pasadena Police Department", "south_pasadena_pd",
        (hotlists_pb2.HotlistEntry(plate="8XY?4*", list_type="amber_alert",
                                   reason="AMBER 26-3: witness saw 8XY?4",
                                   contact="SPPD Dispatch"),),
        ("commander", Role.SYSTEM_ADMINISTRATOR),
    ),
)  # fmt: skip


@dataclass
class RunningAgency:
    """A served demo node and its people's credentials."""

    spec: AgencySpec
    config: NodeConfig
    process: subprocess.Popen[bytes]
    address: str
    credentials: dict[str, TLSConfig] = field(default_factory=dict)
    public_key: bytes = b""

    def channel(self, who: str) -> grpc.Channel:
        """A channel to this node presenting `who`'s certificate."""
        return grpc.secure_channel(self.address, self.credentials[who].channel_credentials())

    @property
    def directory(self) -> Path:
        """The node's directory."""
        return self.config.directory

    @contextlib.contextmanager
    def admin(self, who: str = "admin") -> Iterator[admin_service_pb2_grpc.AdminServiceStub]:
        """`who`'s AdminService stub for the block (the operator's by default)."""
        with self.channel(who) as channel:
            yield admin_service_pb2_grpc.AdminServiceStub(channel)


class DemoError(NodeError):
    """A step of the demo did not come out as it should."""


@contextlib.contextmanager
def _step(title: str) -> Iterator[None]:
    """Print a step as it starts and how long it took."""
    print(f"• {title} …", flush=True)
    began = time.perf_counter()
    yield
    print(f"  done in {time.perf_counter() - began:.1f} s", flush=True)


def start_agency(spec: AgencySpec, directory: Path, ca: CertificateAuthority) -> RunningAgency:
    """Init `spec`'s node in `directory`, serve it as `alpr serve`, and issue its people."""
    now = datetime.now(UTC)
    config = init_node(
        directory,
        ori=spec.ori,
        name=spec.name,
        federation=None,
        ca=ca,
        hosts=("localhost", "127.0.0.1"),
        listen="127.0.0.1:0",
        store_url="",
        now=now,
        profile=spec.profile,
    )
    # The operator is the node's first system administrator, who enrols its other users.
    bootstrap_administrator(
        config, name="admin", display_name=f"{spec.key.upper()} operator", password=lambda: PASSWORD
    )
    log = (directory / "serve.log").open("wb")
    alpr = shutil.which("alpr", path=str(Path(sys.executable).parent)) or "alpr"
    env = os.environ | {"ALPR_PATROL_HEARTBEAT_SECONDS": "0.5"}
    process = subprocess.Popen(  # noqa: S603 (our own command)
        [alpr, "serve", str(directory)], stdout=log, stderr=log, env=env
    )
    agency = RunningAgency(spec, config, process, _address(directory, process))
    people = [
        (PrincipalKind.USER, "admin"),
        (PrincipalKind.USER, "detective"),
        (PrincipalKind.DEVICE, "cam-1"),
        (PrincipalKind.DEVICE, "cam-2"),
        (PrincipalKind.DEVICE, "car-17"),
    ]
    if spec.approver:
        people.append((PrincipalKind.USER, spec.approver[0]))
    for kind, name in people:
        issued = ca.issue(Principal(FEDERATION, spec.ori, kind, name), now=now, days=2)
        cert, key = directory / "people" / f"{name}.crt", directory / "people" / f"{name}.key"
        issued.write(cert, key)
        agency.credentials[name] = TLSConfig.from_files(ca=config.tls_ca, cert=cert, key=key)
    with agency.admin() as admin:
        info = admin.GetNodeInfo(admin_service_pb2.GetNodeInfoRequest(), timeout=TIMEOUT)
    agency.public_key = info.node.signing_public_key
    return agency


def _address(directory: Path, process: subprocess.Popen[bytes]) -> str:
    """The address a starting `alpr serve` logs once it serves."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        for line in (directory / "serve.log").read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("msg") == "serving":
                    return str(record["address"])
        if process.poll() is not None:
            raise DemoError(f"the node in {directory} exited; see {directory / 'serve.log'}")
        time.sleep(0.05)
    raise DemoError(f"the node in {directory} did not start in {START_SECONDS} s")


def every_pair(agencies: Sequence[RunningAgency]) -> list[tuple[RunningAgency, RunningAgency]]:
    """Each pair of `agencies` once, the earlier one first."""
    return [(a, b) for index, a in enumerate(agencies) for b in agencies[index + 1 :]]


def federate(pairs: Sequence[tuple[RunningAgency, RunningAgency]]) -> None:
    """Make each pair partners: each registers the other, the first proposes, the second accepts.

    Each agreement grants `GRANTS` both ways for `PURPOSE`.
    """
    for pair in pairs:
        for agency, other in (pair, pair[::-1]):
            with agency.admin() as admin:
                admin.AddPeer(
                    peers_pb2.AddPeerRequest(
                        peer=peers_pb2.Peer(
                            ori=other.spec.ori,
                            name=other.spec.name,
                            endpoint=other.address,
                            signing_public_key=other.public_key,
                        )
                    ),
                    timeout=TIMEOUT,
                )
    for proposer, accepter in pairs:
        request = agreements_pb2.CreateAgreementRequest(
            partner_ori=accepter.spec.ori, we_grant=GRANTS, they_grant=GRANTS,
            purposes=[PURPOSE],
        )  # fmt: skip
        now = datetime.now(UTC)
        request.starts_at.FromDatetime(now - timedelta(minutes=1))
        request.sunsets_at.FromDatetime(now + timedelta(days=180))
        with proposer.admin() as admin:
            created = admin.CreateAgreement(request, timeout=TIMEOUT).agreement
            admin.ProposeAgreement(
                agreements_pb2.ProposeAgreementRequest(agreement_id=created.agreement_id),
                timeout=TIMEOUT,
            )
        with accepter.admin() as admin:
            admin.AcceptAgreement(
                agreements_pb2.AcceptAgreementRequest(agreement_id=created.agreement_id),
                timeout=TIMEOUT,
            )


def _share_hotlists(agencies: list[RunningAgency]) -> int:
    for agency in agencies:
        with agency.admin() as admin:
            admin.CreateHotlist(hotlists_pb2.CreateHotlistRequest(name="wanted"), timeout=TIMEOUT)
            admin.AddHotlistEntries(
                hotlists_pb2.AddHotlistEntriesRequest(
                    list_name="wanted", entries=agency.spec.listed
                ),
                timeout=TIMEOUT,
            )
    pulls = 0
    for agency in agencies:
        with agency.admin() as admin:
            for other in agencies:
                if other is not agency:
                    pulled = admin.PullPartnerHotlist(
                        partner_hotlists_pb2.PullPartnerHotlistRequest(partner_ori=other.spec.ori),
                        timeout=TIMEOUT,
                    )
                    pulls += 1
                    print(f"  {agency.spec.key.upper()} pulled {other.spec.key.upper()}'s list "
                          f"(exchange {pulled.exchange_id[:8]}…, receipted both ways)")  # fmt: skip
    return pulls


def report_reads(agency: RunningAgency, who: str, plates: Sequence[str]) -> int:
    """`who`'s camera reports `plates`, read now; the hits they raised."""
    now = datetime.now(UTC)
    reads = []
    for plate in plates:
        read = capture_pb.PlateRead(
            plate=plate,
            confidence=0.94,
            latitude=34.0522,
            longitude=-118.2437,
            camera_read_id=str(uuid.uuid4()),  # a resent read is then stored once
        )
        read.captured_at.FromDatetime(now)
        reads.append(read)
    with agency.channel(who) as channel:
        answer = capture_grpc.CaptureServiceStub(channel).SubmitReads(
            capture_pb.SubmitReadsRequest(camera_id=who, reads=reads), timeout=TIMEOUT
        )
    return answer.hit_count


def _send_frames(agency: RunningAgency, who: str) -> int:
    """`who`'s camera sends the demo frames; the hits their reads raised (0 if refused)."""
    now = datetime.now(UTC)
    frames = []
    for path in sorted(FRAMES.glob("*.jpg")):
        frame = capture_pb.CameraFrame(
            image=path.read_bytes(),
            latitude=34.0614,
            longitude=-118.2385,
            frame_id=str(uuid.uuid4()),  # a resent frame is then answered, not read again
        )
        frame.captured_at.FromDatetime(now)
        frames.append(frame)
    with agency.channel(who) as channel:
        try:
            answer = capture_grpc.CaptureServiceStub(channel).SubmitFrames(
                capture_pb.SubmitFramesRequest(camera_id=who, frames=frames), timeout=TIMEOUT
            )
        except grpc.RpcError as error:
            if not isinstance(error, grpc.Call) or (
                error.code() != grpc.StatusCode.FAILED_PRECONDITION
            ):
                raise
            print(f"  {who}: frames refused, {error.details()}")
            return 0
    read = [f"{p.plate} ({p.confidence:.2f})" for f in answer.frames for p in f.plates]
    print(f"  {who}: {len(frames)} frames sent, the node read {', '.join(read) or 'nothing'}")
    return answer.hit_count


def _patrol(lapd: RunningAgency, plates: list[str]) -> list[patrol_pb.Hit]:
    received: queue.Queue[patrol_pb.StreamHitsResponse] = queue.Queue()
    with lapd.channel("car-17") as channel:
        stub = patrol_grpc.PatrolServiceStub(channel)
        stream = stub.StreamHits(patrol_pb.StreamHitsRequest(after_cursor=0), timeout=TIMEOUT)

        def pump() -> None:
            with contextlib.suppress(grpc.RpcError):
                for message in stream:
                    received.put(message)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        first = received.get(timeout=TIMEOUT)  # a heartbeat: the stream is live
        if not first.HasField("heartbeat"):
            raise DemoError("the patrol stream did not start with a heartbeat")
        raised = report_reads(lapd, "cam-1", plates)
        if raised != HITS_FROM_READS:
            raise DemoError(f"the camera's reads raised {raised} hits, not {HITS_FROM_READS}")
        raised += _send_frames(lapd, "cam-2")
        hits: list[patrol_pb.Hit] = []
        while len(hits) < raised:
            message = received.get(timeout=TIMEOUT)
            if message.HasField("hit"):
                hit = message.hit
                hits.append(hit)
                kind = patrol_pb.MatchKind.Name(hit.kind).removeprefix("MATCH_KIND_").lower()
                mark = "" if kind == "exact" else f" [{kind} match: check the plate]"
                print(f"  \a🚨 {hit.plate} on {hit.issuer_ori}'s {hit.list_name}: "
                      f"{hit.list_type}, {hit.reason}{mark}")  # fmt: skip
        stub.RecordDisposition(
            patrol_pb.RecordDispositionRequest(
                hit_id=hits[0].hit_id,
                disposition=patrol_pb.DISPOSITION_VISUALLY_VERIFIED,
                note="plate seen, vehicle stopped",
            ),
            timeout=TIMEOUT,
        )
        stream.cancel()  # type: ignore[no-untyped-call]
        reader.join(timeout=TIMEOUT)
    return hits


def _ask_partners(lapd: RunningAgency) -> search_pb.SearchPartnersResponse:
    now = datetime.now(UTC)
    request = search_pb.SearchPartnersRequest(
        plate="7ABC123", purpose=PURPOSE, case_number=CASE, deadline_ms=5000
    )
    request.since.FromDatetime(now - timedelta(hours=1))
    request.until.FromDatetime(now + timedelta(minutes=5))
    with lapd.channel("detective") as channel:
        answer = search_grpc.SearchServiceStub(channel).SearchPartners(request, timeout=TIMEOUT)
    for partner in answer.partners:
        _show(partner)
    return answer


def _show(partner: search_pb.PartnerAnswer) -> None:
    """Print what became of the query at `partner`, and where it saw the plate."""
    outcome = search_pb.PartnerOutcome.Name(partner.outcome).removeprefix("PARTNER_OUTCOME_")
    held = f" (reference {partner.approval_reference})" if partner.approval_reference else ""
    print(f"  {partner.partner_ori}: {outcome.lower().replace('_', ' ')}{held}")
    for read in partner.reads:
        print(f"    seen by its {read.camera_id} at {read.captured_at.ToDatetime():%H:%M:%S} UTC, "
              f"{read.latitude:.4f}, {read.longitude:.4f}")  # fmt: skip


def _login(admin: admin_service_pb2_grpc.AdminServiceStub, name: str) -> Metadata:
    """Log `name` in with their password; the session to send with each call."""
    login = users_pb2.LoginRequest(user_name=name, password=PASSWORD)
    token = admin.Login(login, timeout=TIMEOUT).session_token
    return ((SESSION_METADATA, f"Bearer {token}"),)


def enrol_approver(agency: RunningAgency) -> None:
    """The operator enrols the user who approves partners' requests, trained and acknowledged.

    Every call runs in the operator's session (ACC-1, ACC-2: no access before both steps).
    """
    if agency.spec.approver is None:
        return
    name, role = agency.spec.approver
    user = users_pb2.User(
        name=name,
        display_name=f"{agency.spec.key.upper()} {role.value.replace('_', ' ')}",
        roles=[users_pb2.Role.Value(f"ROLE_{role.value.upper()}")],
    )
    with agency.admin() as admin:
        session = _login(admin, "admin")
        admin.CreateUser(
            users_pb2.CreateUserRequest(user=user, password=PASSWORD),
            metadata=session,
            timeout=TIMEOUT,
        )
        for step in (users_pb2.USER_STEP_TRAINING, users_pb2.USER_STEP_POLICY_ACKNOWLEDGEMENT):
            admin.RecordUserStep(
                users_pb2.RecordUserStepRequest(name=name, step=step),
                metadata=session,
                timeout=TIMEOUT,
            )
    print(f"  {agency.spec.key.upper()}: {name} ({role.value.replace('_', ' ')}) enrolled, "
          "training and policy acknowledgement recorded")  # fmt: skip


def approve_held(agency: RunningAgency) -> int:
    """The agency's approver logs in, reviews each partner request held and approves it.

    Returns:
        How many it approved.
    """
    if agency.spec.approver is None:
        return 0
    name, _ = agency.spec.approver
    key = agency.spec.key.upper()
    with agency.admin(name) as admin:
        session = _login(admin, name)
        pending = admin.ListPartnerRequests(
            partner_requests_pb2.ListPartnerRequestsRequest(), metadata=session, timeout=TIMEOUT
        ).requests
        for request in pending:
            print(f"  {key}: {name} reviews {request.partner_ori}'s request by "
                  f"{request.requesting_user.rpartition('/')[2]}: {request.plate} from "
                  f"{request.since.ToDatetime():%H:%M} to {request.until.ToDatetime():%H:%M} UTC, "
                  f"for {request.purpose.lower()}, case {request.case_number}")  # fmt: skip
            reason = f"need to know shown: stolen vehicle, case {request.case_number}"
            admin.ApprovePartnerRequest(
                partner_requests_pb2.ApprovePartnerRequestRequest(
                    reference=request.reference, reason=reason
                ),
                metadata=session,
                timeout=TIMEOUT,
            )
            print(f"  {key}: approved by {name} ({reason})")
    return len(pending)


def collect_answers(lapd: RunningAgency) -> list[search_pb.PartnerAnswer]:
    """LAPD's detective lists the queries partners held and collects each answer."""
    with lapd.channel("detective") as channel:
        search = search_grpc.SearchServiceStub(channel)
        held = search.ListHeldQueries(
            search_pb.ListHeldQueriesRequest(), timeout=TIMEOUT
        ).held_queries
        for query in held:
            state = search_pb.HeldQueryState.Name(query.state).removeprefix("HELD_QUERY_STATE_")
            print(f"  the detective's {query.plate} query at {query.partner_ori} "
                  f"(case {query.case_number}): {state.lower()}")  # fmt: skip
        answers = []
        for query in held:
            answer = search.CollectPartnerAnswer(
                search_pb.CollectPartnerAnswerRequest(
                    partner_ori=query.partner_ori, approval_reference=query.approval_reference
                ),
                timeout=TIMEOUT,
            ).partner
            _show(answer)
            answers.append(answer)
    return answers


def stop_agencies(agencies: Sequence[RunningAgency]) -> None:
    """Stop each node still running, in order, each before the next.

    A node gives its partners the acknowledgements it still owes them as it stops (AUD-6),
    so the one that asked goes first, while its partners still answer.
    """
    for agency in agencies:
        if agency.process.poll() is None:
            agency.process.send_signal(signal.SIGTERM)
            agency.process.wait(timeout=30)


def _verify(agencies: list[RunningAgency]) -> None:
    from gateway.cli import main  # noqa: PLC0415 (the CLI imports this module)

    for agency in agencies:
        for command in (["receipts", "verify"], ["audit", "verify"]):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = main([*command, str(agency.directory)])
            lines = out.getvalue().strip().splitlines()
            print(f"  {agency.spec.key.upper()} {' '.join(command)}: {lines[-1] if lines else ''}")
            if code != 0:
                raise DemoError(f"{' '.join(command)} failed on {agency.directory}")


def run_demo(directory: Path) -> int:
    """Run the demo in `directory` (replacing an earlier run's); 0 when every check held."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    began = time.perf_counter()
    print(f"alpr demo: three agencies federated on loopback, in {directory}")
    ca = CertificateAuthority.create(FEDERATION, now=datetime.now(UTC))
    ca.save(directory / "ca")
    agencies: list[RunningAgency] = []
    try:
        with _step("start three agency nodes (each its own directory, SQLite file and profile)"):
            agencies.extend(start_agency(spec, directory / spec.key, ca) for spec in AGENCIES)
            for agency in agencies:
                print(f"  {agency.spec.key.upper()} {agency.spec.ori} on {agency.address}")
        with _step("register partners and sign agreements between every pair"):
            pairs = every_pair(agencies)
            federate(pairs)
            for first, second in pairs:
                print(f"  {first.spec.key.upper()} ↔ {second.spec.key.upper()}: signed by both")
        with _step("publish a hotlist at each agency and pull every partner's"):
            pulls = _share_hotlists(agencies)
        for partner in agencies[1:]:
            report_reads(partner, "cam-1", ["7ABC123"])  # partners' cameras saw the stolen car
        with _step("LAPD's cameras report plates and send frames; a patrol car gets the hits"):
            hits = _patrol(agencies[0], ["7ABC123", "8XY947", "6TRK999", "4GHJ512"])
        with _step("LASD and South Pasadena enrol the approvers their profiles name (SHR-5)"):
            for agency in agencies:
                enrol_approver(agency)
        with _step("a detective asks every partner where 7ABC123 was seen"):
            answer = _ask_partners(agencies[0])
        with _step("each partner's approver reviews the held request and approves it"):
            approved = sum(approve_held(agency) for agency in agencies)
        with _step("the detective collects the approved answers"):
            collected = collect_answers(agencies[0])
        with _step("stop the nodes, LAPD first: it gives partners what it still owes them"):
            stop_agencies(agencies)
        with _step("verify every receipt and every audit log on all three nodes"):
            _verify(agencies)
    except grpc.RpcError as error:
        code = error.code().name if isinstance(error, grpc.Call) else ""
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        raise DemoError(
            f"a call failed: {code} {details} (logs: {directory}/*/serve.log)"
        ) from error
    except queue.Empty as error:
        raise DemoError(
            f"nothing arrived in {TIMEOUT} s (logs: {directory}/*/serve.log)"
        ) from error
    finally:
        stop_agencies(agencies)
    answered = sum(p.outcome == search_pb.PARTNER_OUTCOME_ANSWERED for p in answer.partners)
    held = sum(p.outcome == search_pb.PARTNER_OUTCOME_PENDING_APPROVAL for p in answer.partners)
    after = sum(p.outcome == search_pb.PARTNER_OUTCOME_ANSWERED for p in collected)
    print()
    print(
        f"Done in {time.perf_counter() - began:.0f} s: {len(agencies)} nodes, "
        f"{len(pairs)} agreements, {pulls} hotlist pulls, {len(hits)} hits streamed to a "
        f"patrol car, {answered} partners answered the query at once and {held} held it for "
        f"their approver; {approved} approved, {after} partners answered after approval; "
        "receipts and audit logs verified on all three."
    )
    print(
        f"Inspect {directory}/<lapd|lasd|spd>/ (node.toml, node.db, serve.log), e.g. "
        f"alpr audit summary {directory}/lapd --since 2026-01-01 --until 2027-01-01"
    )
    return 0


def add_demo_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `alpr demo` to the CLI."""
    demo = commands.add_parser("demo", help="three agencies federated on loopback, end to end")
    demo.add_argument(
        "directory", type=Path, nargs="?", default=Path("var/demo"),
        help="where the nodes go (replaced if it exists; default var/demo)",
    )  # fmt: skip
    demo.set_defaults(run=lambda args: run_demo(args.directory))
