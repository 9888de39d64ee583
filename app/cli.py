"""Command-line groups attached to ``flask`` (SPEC §2)."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from . import state
from .admin import actions
from .cli_keys import keys_cli, migration_cli
from .core import users as user_service
from .core.clients import CLIENT_SCOPES, DEFAULT_CLIENT_SCOPES, list_clients
from .core.errors import CoreError
from .errors import TesseraError, answer_for
from .events import purge_security_events
from .extensions import db
from .models import User
from .security.revocation import revocations

users_cli = AppGroup("users", help="Create and manage users.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _create(username: str, roles: tuple[str, ...], password: str,
            temporary: bool = False) -> None:
    try:
        user = user_service.create_user(db.session(), username, password, roles, state.now(),
                                        temporary=temporary)
    except user_service.UserError as exc:
        raise click.ClickException(str(exc)) from None
    shown = ", ".join(user.roles) or "-"
    click.echo(f"created user {user.username} (id {user.id}, roles: {shown})")


@users_cli.command("create")
@click.argument("username")
@click.option("--role", "roles", multiple=True, help="Role to grant; repeatable.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--temporary", is_flag=True, help="The first login must replace the password.")
def create_command(username: str, roles: tuple[str, ...], password_stdin: bool,
                   temporary: bool) -> None:
    """Create a user."""
    _create(username, roles, _read_password(password_stdin), temporary)


@users_cli.command("create-admin")
@click.option("--username", prompt="Admin username", help="Name of the new admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_admin_command(username: str, password_stdin: bool) -> None:
    """Create a user with the admin role."""
    _create(username, ("admin",), _read_password(password_stdin))


def _find(username: str) -> User:
    user = db.session.scalars(select(User).where(
        User.username == user_service.normalize_username(username))).first()
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    return user


def _refused(refused: TesseraError | CoreError) -> click.ClickException:
    exc = answer_for(refused)  # the API's answer, so the CLI words it the same way
    problems = [f"{name}: {'; '.join(map(str, msgs))}" for name, msgs in exc.details.items()]
    return click.ClickException("; ".join(problems) or exc.message)


@users_cli.command("list")
@click.option("--search", "q", default=None, help="Only names containing this.")
@click.option("--after-id", type=int, default=None, help="Start after this id (paging).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100)
def list_command(q: str | None, after_id: int | None, limit: int) -> None:
    """Users by id: id, name, roles, state."""
    for user in user_service.page_users(db.session(), q=q, after_id=after_id, limit=limit):
        state_ = "disabled" if user.disabled else "active"
        change = "  (password change due)" if user.must_change_password else ""
        click.echo(f"{user.id:>6}  {user.username:<24} {state_:<8} "
                   f"{','.join(user.roles) or '-'}{change}")


@users_cli.command("reset-mfa")
@click.argument("username")
def reset_mfa_command(username: str) -> None:
    """Remove USERNAME's authenticator and recovery codes (a lost phone); ends their sessions."""
    user = _find(username)
    was_on = actions.reset_mfa(user)
    click.echo(f"MFA reset for {user.username}" + ("" if was_on else " (it was not on)"))


@users_cli.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--generate", is_flag=True, help="Generate one and print it once.")
def set_password_command(username: str, password_stdin: bool, generate: bool) -> None:
    """Give USERNAME a temporary password that their next login must replace; ends their
    sessions."""
    user = _find(username)
    given = None if generate else _read_password(password_stdin)
    try:
        password = actions.set_temporary_password(user, given)
    except (TesseraError, CoreError) as exc:
        raise _refused(exc) from None
    if generate:
        click.echo(f"temporary password: {password}")
    click.echo(f"{user.username} must choose a new password at the next login")


@users_cli.command("disable")
@click.argument("username")
def disable_command(username: str) -> None:
    """Disable USERNAME; every session of theirs ends now."""
    actions.update_user_account(_find(username), disabled=True)
    click.echo(f"disabled {username}")


@users_cli.command("enable")
@click.argument("username")
def enable_command(username: str) -> None:
    """Enable USERNAME again."""
    actions.update_user_account(_find(username), disabled=False)
    click.echo(f"enabled {username}")


@users_cli.command("set-roles")
@click.argument("username")
@click.option("--role", "roles", multiple=True, help="Role to hold; repeatable; none: no role.")
def set_roles_command(username: str, roles: tuple[str, ...]) -> None:
    """Set USERNAME's roles (their tokens end so that new ones carry them)."""
    bad = [r for r in roles if not user_service.ROLE_PATTERN.fullmatch(r)]
    if bad:
        raise click.ClickException(f"invalid role name: {bad[0]}")
    user = actions.update_user_account(_find(username), roles=list(roles))
    click.echo(f"{user.username}: {', '.join(user.roles) or 'no role'}")


revocations_cli = AppGroup("revocations", help="The revocation store.")
clients_cli = AppGroup("clients", help="Service clients of /oauth/introspect and /oauth/revoke.")


@clients_cli.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(CLIENT_SCOPES),
              help="Endpoint the client may call; repeatable; default: introspect and revoke.")
def create_client_command(name: str, scopes: tuple[str, ...]) -> None:
    """Register a service client; its secret is printed once and stored hashed."""
    try:
        client, secret = actions.create_client(name, list(scopes or DEFAULT_CLIENT_SCOPES))
    except (TesseraError, CoreError) as exc:
        raise _refused(exc) from None
    click.echo(f"client_id:     {client.client_id}")
    click.echo(f"client_secret: {secret}")
    click.echo("(the secret is not stored in clear and cannot be shown again)")


@clients_cli.command("list")
def list_clients_command() -> None:
    """Every client: id, scopes, name, when its secret last changed."""
    now = state.now()
    for client in list_clients(db.session()):
        rotated = client.secret_rotated_at or client.created_at
        overlap = client.previous_secret_expires_at
        old = f", old secret valid until {overlap:%Y-%m-%d %H:%M}Z" \
            if overlap is not None and overlap > now else ""
        click.echo(f"{client.client_id}  {','.join(client.scopes):<18} {client.name}"
                   f"  (secret of {rotated:%Y-%m-%d %H:%M}Z{old})")


@clients_cli.command("rotate-secret")
@click.argument("client_id")
def rotate_client_command(client_id: str) -> None:
    """A new secret, printed once; the old one works for CLIENT_SECRET_OVERLAP more."""
    try:
        client, secret = actions.rotate_client_secret(client_id)
    except (TesseraError, CoreError) as exc:
        raise _refused(exc) from None
    click.echo(f"client_secret: {secret}")
    until = client.previous_secret_expires_at
    click.echo(f"the previous secret works until {until:%Y-%m-%d %H:%M:%S}Z" if until
               else "the previous secret no longer works")


@clients_cli.command("set-scopes")
@click.argument("client_id")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(CLIENT_SCOPES), help="Endpoint the client may call; repeatable.")
def set_client_scopes_command(client_id: str, scopes: tuple[str, ...]) -> None:
    """Set what CLIENT_ID may call."""
    try:
        client = actions.set_client_scopes(client_id, list(scopes))
    except (TesseraError, CoreError) as exc:
        raise _refused(exc) from None
    click.echo(f"{client.client_id}: {', '.join(client.scopes)}")


@clients_cli.command("delete")
@click.argument("client_id")
def delete_client_command(client_id: str) -> None:
    """Remove CLIENT_ID; its secrets stop working at once."""
    try:
        actions.delete_client(client_id)
    except (TesseraError, CoreError) as exc:
        raise _refused(exc) from None
    click.echo(f"deleted {client_id}")


@revocations_cli.command("purge")
def purge_command() -> None:
    """Delete revocations that outlived everything they revoke."""
    removed = revocations().purge(state.now())
    click.echo(f"purged {removed} expired revocation(s)")
    events = purge_security_events()
    click.echo(f"purged {events} expired security event(s)")


def init_app(app: Flask) -> None:
    """Attach the CLI groups to ``app``."""
    for group in (users_cli, keys_cli, migration_cli, revocations_cli, clients_cli):
        app.cli.add_command(group)
