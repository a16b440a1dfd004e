"""Creating a node's directory (`alpr init`) and opening it to serve (`alpr serve`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.config import CONFIG_FILE, NodeConfig, load_config, render_config
from gateway.errors import ConfigError
from gateway.servicers.identity import NodeIdentityView
from gateway.tls import TLSConfig
from node.ed25519 import DataKey, Ed25519Signer
from node.errors import NodeError, ValidationError
from node.identity import Principal, PrincipalKind, validate_federation, validate_ori
from node.owner import check_owner, record_owner
from node.pki import CertificateAuthority
from node.store import create_engine, upgrade


@dataclass(frozen=True)
class OpenedNode:
    """Everything a node's directory yields once it has been checked."""

    config: NodeConfig
    tls: TLSConfig
    signer: Ed25519Signer
    data_key: DataKey
    engine: Engine
    identity: NodeIdentityView


def init_node(
    directory: Path,
    *,
    ori: str,
    name: str,
    federation: str | None,
    ca: CertificateAuthority | None,
    hosts: tuple[str, ...],
    listen: str,
    store_url: str,
    now: datetime,
) -> NodeConfig:
    """Create a node: config, Ed25519 signing key, database, and its certificate if a CA is given.

    Raises:
        ValidationError: The ORI or federation is malformed, the directory already holds
            a node, or the federation disagrees with the CA's.
    """
    validate_ori(ori)
    if ca is not None and federation not in (None, ca.federation):
        raise ValidationError("federation", f"the CA is for {ca.federation!r}, not {federation!r}")
    federation = ca.federation if ca is not None else federation
    if federation is None:
        raise ValidationError("federation", "give --federation or --ca")
    validate_federation(federation)
    if (directory / CONFIG_FILE).exists():
        raise ValidationError("directory", f"{directory} already holds a node")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(
        render_config(ori=ori, name=name, federation=federation, listen=listen, store_url=store_url)
    )
    config = load_config(directory, {})
    signer = Ed25519Signer.generate(config.signing_key)
    DataKey.load_or_create(config.data_key)
    if ca is not None:
        issued = ca.issue(Principal(federation, ori, PrincipalKind.NODE), now=now, hosts=hosts)
        issued.write(config.tls_cert, config.tls_key)
        config.tls_ca.write_bytes(ca.certificate_pem)
    engine = create_engine(config.store_url)
    try:
        upgrade(engine)
        record_owner(
            engine,
            ori=ori,
            name=name,
            federation=federation,
            public_key=signer.public_key.public_bytes,
            now=now,
        )
    finally:
        engine.dispose()
    return config


def open_node(config: NodeConfig, *, now: datetime) -> OpenedNode:
    """Check and open everything `config` names, migrating the database to the current schema.

    Raises:
        ConfigError: A file is missing or wrong, the certificate does not name this
            node, or the database belongs to another agency or key.
    """
    tls = TLSConfig.from_files(ca=config.tls_ca, cert=config.tls_cert, key=config.tls_key)
    expected = Principal(config.federation, config.ori, PrincipalKind.NODE)
    named = tls.principal(reference_time=now)
    if named != expected:
        raise ConfigError(
            f"{config.tls_cert}: names {named.spiffe_id}, not this node ({expected.spiffe_id})"
        )
    try:
        signer = Ed25519Signer.load(config.signing_key)
        data_key = DataKey.load_or_create(config.data_key)
        engine = create_engine(config.store_url)
    except NodeError as error:
        raise ConfigError(error.diagnostics()) from error
    try:
        upgrade(engine)
        check_owner(
            engine,
            ori=config.ori,
            federation=config.federation,
            public_key=signer.public_key.public_bytes,
        )
    except NodeError as error:
        engine.dispose()
        raise ConfigError(f"{_redacted(config.store_url)}: {error.diagnostics()}") from error
    except SQLAlchemyError as error:  # a database that cannot be reached or migrated
        engine.dispose()
        first_line = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise ConfigError(f"{_redacted(config.store_url)}: cannot open: {first_line}") from error
    identity = NodeIdentityView(
        ori=config.ori,
        name=config.name,
        federation=config.federation,
        signing_public_key=signer.public_key.public_bytes,
    )
    return OpenedNode(config, tls, signer, data_key, engine, identity)


def _redacted(url: str) -> str:
    """`url` without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)
