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
from node.profile import PolicyProfile, builtin_profiles, load_profile
from node.store import create_engine, upgrade


@dataclass(frozen=True)
class OpenedNode:
    """Everything a node's directory yields once it has been checked."""

    config: NodeConfig
    tls: TLSConfig
    signer: Ed25519Signer
    data_key: DataKey
    profile: PolicyProfile
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
    profile: str,
) -> NodeConfig:
    """Create a node: config, policy profile, keys, database, and its certificate if a CA is given.

    Args:
        directory: Where the node's files go.
        ori: The agency's ORI.
        name: The agency's name.
        federation: The federation's trust domain, or None to take the CA's.
        ca: The federation CA, to issue the node's certificate now; or None.
        hosts: The DNS names and addresses the node serves as.
        listen: host:port to serve on.
        store_url: The database URL, or empty for the SQLite file.
        now: The time the certificate and the database start from.
        profile: A shipped profile's name (e.g. ``lapd``) or the path of the agency's own.

    Raises:
        ValidationError: The ORI or federation is malformed, the directory already holds
            a node, the federation disagrees with the CA's, or the profile is unknown or
            breaks a rule (with the key that does).
    """
    validate_ori(ori)
    if ca is not None and federation not in (None, ca.federation):
        raise ValidationError("federation", f"the CA is for {ca.federation!r}, not {federation!r}")
    federation = ca.federation if ca is not None else federation
    if federation is None:
        raise ValidationError("federation", "give --federation or --ca")
    validate_federation(federation)
    profile_text = _profile_text(profile)
    if (directory / CONFIG_FILE).exists():
        raise ValidationError("directory", f"{directory} already holds a node")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(
        render_config(ori=ori, name=name, federation=federation, listen=listen, store_url=store_url)
    )
    config = load_config(directory, {})
    config.profile.write_text(profile_text)
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


def _profile_text(profile: str) -> str:
    """The text of a shipped profile by name, or of the profile file at that path, validated.

    Raises:
        ValidationError: No such profile, or it breaks a rule.
    """
    shipped = builtin_profiles()
    path = shipped.get(profile, Path(profile))
    if profile not in shipped and not path.is_file():
        names = ", ".join(sorted(shipped))
        raise ValidationError("profile", f"{profile!r} is no file and no shipped profile ({names})")
    load_profile(path)
    return path.read_text()


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
        profile = load_profile(config.profile)
        signer = Ed25519Signer.load(config.signing_key)
        data_key = DataKey.load_or_create(config.data_key)
        engine = create_engine(config.store_url, connections=config.worker_threads)
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
    return OpenedNode(config, tls, signer, data_key, profile, engine, identity)


def _redacted(url: str) -> str:
    """`url` without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)
