"""`flask keys ...` and `flask migration ...` (SPEC §2, §4): thin wrappers over keyops."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from . import state
from .core import keys as key_service
from .core import migration
from .core.crypto import key_id
from .extensions import db
from .security import keyops, snapshot

keys_cli = AppGroup("keys", help="Signing keys: list, ensure, rotate, revoke.")
migration_cli = AppGroup("migration", help="The HS256 to asymmetric migration.")


@keys_cli.command("list")
def list_command() -> None:
    """Every key with its state and dates."""
    for row in keyops.list_signing_keys():
        dates = ", ".join(
            f"{name} {value:%Y-%m-%d %H:%M:%S}Z"
            for name, value in (("created", row.created_at), ("activated", row.activated_at),
                                ("retired", row.retired_at), ("revoked", row.revoked_at))
            if value is not None
        )
        click.echo(f"{row.kid}  {row.alg}  {row.state:<8} {dates}")


@keys_cli.command("ensure")
def ensure_command() -> None:
    """Create an active and a standby key if missing; check the key-encryption key opens them."""
    try:
        keyops.ensure_signing_keys()
    except key_service.KeyError_ as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("signing keys ready")


@keys_cli.command("reseal")
def reseal_command() -> None:
    """Re-seal every private key and TOTP secret under the first KEY_ENCRYPTION_KEY, so
    that the others can be dropped; prints counts. Safe to run again."""
    report = keyops.reseal_secrets()
    for kind in ("signing_keys", "totp_secrets"):
        click.echo(f"{kind.replace('_', ' ')}: {report.resealed[kind]} re-sealed, "
                   f"{report.current[kind]} already under the first key")
    if report.unreadable:
        raise click.ClickException(
            f"{len(report.unreadable)} value(s) no configured key opens, first: "
            f"{report.unreadable[0]}; keep the key that sealed them in the list")
    click.echo(f"everything is sealed under key {key_id(_first_kek())}: "
               "the other keys may now be dropped")


def _first_kek() -> bytes:
    kek = state.settings().key_encryption_key
    assert kek is not None
    return kek


@keys_cli.command("rotate")
@click.option("--if-due", is_flag=True,
              help="Only if the active key is older than KEY_ROTATION_INTERVAL.")
@click.option("--force", is_flag=True,
              help="Promote a standby younger than the JWKS cache lifetime.")
def rotate_command(if_due: bool, force: bool) -> None:
    """Promote the standby key; the old active key keeps verifying until its tokens expire."""
    try:
        result = keyops.rotate_signing_keys(force=force, if_due=if_due)
    except key_service.KeyError_ as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{result.message}: active key {result.active_kid}")


@keys_cli.command("revoke")
@click.argument("kid")
def revoke_command(kid: str) -> None:
    """Emergency: unpublish KID and refuse every token it signed."""
    try:
        keyops.revoke_signing_key(kid)
    except key_service.KeyError_ as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"revoked {kid}")


@migration_cli.command("status")
def status_command() -> None:
    """The phase, and legacy tokens seen per day."""
    current = snapshot()
    click.echo(f"phase: {current.phase}")
    until = state.settings().legacy_accept_until
    click.echo(f"legacy accepted until: {until.isoformat() if until else 'no limit'}")
    status = migration.signing_status(current.phase, until, state.now(),
                                      current.signer.alg if current.signer else None)
    click.echo(f"signing: {status.signing_alg or 'no key'}; "
               f"HS256 {'accepted' if status.legacy_accepted else 'refused'}")
    if status.note:
        click.echo(f"note: {status.note}")
    for day in migration.legacy_usage(db.session()):
        click.echo(f"{day.day}  {day.count:>8}  last {day.last_seen_at:%H:%M:%S}Z")


@migration_cli.command("set")
@click.argument("phase", type=click.Choice(["legacy", "dual", "asymmetric"]))
def set_command(phase: str) -> None:
    """Move the migration to PHASE (every worker follows within KEYRING_REFRESH)."""
    try:
        previous = keyops.set_migration_phase(phase)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"migration phase: {previous or 'default'} -> {phase}")
    current = snapshot()
    status = migration.signing_status(phase, state.settings().legacy_accept_until, state.now(),
                                      current.signer.alg if current.signer else None)
    if status.note:  # e.g. legacy past the sunset: allowed, but not what the name suggests
        click.echo(f"note: {status.note}")
