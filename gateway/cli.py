"""The `alpr` command: create, serve and reach a node; run the federation's PKI."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from federation.exchange import UNACKNOWLEDGED, ExchangeLedger, check_ledger
from federation.peers import PeerRegistry
from gateway.cli_admin import add_admin_commands
from gateway.cli_audit import add_audit_commands
from gateway.cli_capture import add_capture_commands
from gateway.cli_holds import add_hold_commands
from gateway.cli_hotlists import add_hotlist_commands
from gateway.cli_patrol import add_patrol_command
from gateway.cli_records import add_record_commands
from gateway.cli_requests import add_request_commands
from gateway.cli_search import add_search_commands
from gateway.cli_users import add_user_commands
from gateway.config import load_config
from gateway.demo import add_demo_command
from gateway.evidence import add_evidence_commands
from gateway.node_dir import init_node, open_node
from gateway.server import serve
from node.clock import system_clock
from node.errors import NodeError
from node.identity import Principal, PrincipalKind
from node.pki import CA_CERT_FILE, CertificateAuthority

EXIT_USAGE = 2
DEFAULT_HOSTS = ("localhost", "127.0.0.1")


def _now() -> datetime:
    return datetime.now(UTC)


def _cmd_init(args: argparse.Namespace) -> int:
    ca = CertificateAuthority.load(args.ca) if args.ca else None
    config = init_node(
        args.directory,
        ori=args.ori,
        name=args.name,
        federation=args.federation,
        ca=ca,
        hosts=tuple(args.host or DEFAULT_HOSTS),
        listen=args.listen,
        store_url=args.store_url,
        now=_now(),
        profile=args.profile,
    )
    print(f"created node {config.ori} ({config.name}) in {config.directory}")
    if ca is None:
        print(
            f"next: put the node's certificate, key and the federation CA at {config.tls_cert},"
            f" {config.tls_key} and {config.tls_ca} (`alpr pki issue-node`)"
        )
    print(f"serve it with: alpr serve {args.directory}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    config = load_config(args.directory, os.environ)
    asyncio.run(serve(config))
    return 0


def _cmd_receipts_verify(args: argparse.Namespace) -> int:
    config = load_config(args.directory, os.environ)
    node = open_node(config, now=_now())
    try:
        ledger = ExchangeLedger(node.engine, clock=system_clock)
        peers = PeerRegistry(node.engine, clock=system_clock)
        checks = check_ledger(ledger, ours=node.signer.public_key, peers=peers)
    finally:
        node.engine.dispose()
    bad = [c for c in checks if any(p != UNACKNOWLEDGED for p in c.problems)]
    waiting = [c for c in checks if UNACKNOWLEDGED in c.problems]
    for check in checks:
        verdict = "; ".join(check.problems) or "ok: both signatures verify"
        print(f"{check.exchange_id}  {check.partner_ori}  {verdict}")
    print(f"{len(checks)} exchanges: {len(checks) - len(bad) - len(waiting)} complete, "
          f"{len(waiting)} unacknowledged (flagged), {len(bad)} failing")  # fmt: skip
    return 1 if bad else 0


def _cmd_pki_init_ca(args: argparse.Namespace) -> int:
    if (args.directory / CA_CERT_FILE).exists():
        print(f"alpr: error: {args.directory} already holds a CA", file=sys.stderr)
        return EXIT_USAGE
    ca = CertificateAuthority.create(args.federation, now=_now(), days=args.days)
    ca.save(args.directory)
    print(f"created the CA of federation {ca.federation} in {args.directory}")
    return 0


def _cmd_pki_issue(args: argparse.Namespace) -> int:
    ca = CertificateAuthority.load(args.ca)
    if args.command == "issue-node":
        principal = Principal(ca.federation, args.ori, PrincipalKind.NODE)
        stem = "node"
    else:
        kind = PrincipalKind.USER if args.user else PrincipalKind.DEVICE
        principal = Principal(ca.federation, args.ori, kind, args.user or args.device)
        stem = principal.name
    issued = ca.issue(
        principal,
        now=_now(),
        days=args.days,
        hosts=tuple(getattr(args, "host", None) or DEFAULT_HOSTS),
    )
    issued.write(args.out / f"{stem}.crt", args.out / f"{stem}.key")
    (args.out / CA_CERT_FILE).write_bytes(ca.certificate_pem)
    print(f"issued {principal.spiffe_id} -> {args.out / f'{stem}.crt'} and {stem}.key (mode 0600)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alpr", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="create a node's directory")
    init.add_argument("directory", type=Path)
    init.add_argument("--ori", required=True, help="the agency's NCIC ORI, e.g. CA0194200")
    init.add_argument("--name", required=True, help="the agency's name")
    init.add_argument(
        "--profile",
        required=True,
        help="policy profile: a shipped one (lapd, lasd, claremont_pd, south_pasadena_pd, "
        "usc_dps) or the path of your own TOML",
    )
    init.add_argument("--federation", help="the federation's trust domain (or take it from --ca)")
    init.add_argument("--ca", type=Path, help="a CA directory: issue the node's certificate now")
    init.add_argument(
        "--host", action="append", help="a DNS name or IP the node serves as (repeat)"
    )
    init.add_argument("--listen", default="127.0.0.1:50051", help="host:port to serve on")
    init.add_argument("--store-url", default="", help="database URL (default: SQLite file)")
    init.set_defaults(run=_cmd_init)

    serve_cmd = commands.add_parser("serve", help="serve a node until SIGTERM or SIGINT")
    serve_cmd.add_argument("directory", type=Path)
    serve_cmd.set_defaults(run=_cmd_serve)

    receipts = commands.add_parser("receipts", help="the receipts of exchanges with partners")
    verify = receipts.add_subparsers(dest="action", required=True).add_parser(
        "verify", help="check every receipt and acknowledgement against both parties' keys"
    )
    verify.add_argument("directory", type=Path, help="the node's directory")
    verify.set_defaults(run=_cmd_receipts_verify)

    pki = commands.add_parser("pki", help="the federation's certificate authority")
    pki_commands = pki.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init_ca = pki_commands.add_parser("init-ca", help="create a federation CA")
    init_ca.add_argument("directory", type=Path)
    init_ca.add_argument("--federation", required=True, help="trust domain, e.g. socal.alpr")
    init_ca.add_argument("--days", type=int, default=3650)
    init_ca.set_defaults(run=_cmd_pki_init_ca)
    for name, help_text in (
        ("issue-node", "issue a node certificate"),
        ("issue-client", "issue a user's or device's certificate"),
    ):
        issue = pki_commands.add_parser(name, help=help_text)
        issue.add_argument("ca", type=Path, help="the CA directory")
        issue.add_argument("--ori", required=True)
        issue.add_argument("--out", type=Path, required=True, help="directory to write into")
        issue.add_argument("--days", type=int, default=365)
        if name == "issue-node":
            issue.add_argument(
                "--host", action="append", help="a DNS name or IP it serves as (repeat)"
            )
        else:
            who = issue.add_mutually_exclusive_group(required=True)
            who.add_argument("--user", help="a user name")
            who.add_argument("--device", help="a patrol device or camera id")
        issue.set_defaults(run=_cmd_pki_issue)

    for add_commands in (
        add_admin_commands,
        add_audit_commands,
        add_capture_commands,
        add_hotlist_commands,
        add_hold_commands,
        add_record_commands,
        add_request_commands,
        add_search_commands,
        add_evidence_commands,
        add_demo_command,
        add_user_commands,
        add_patrol_command,
    ):
        add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `alpr` command; every expected failure is one line and exit code 2."""
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except NodeError as error:
        print(f"alpr: error: {error.diagnostics()}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
