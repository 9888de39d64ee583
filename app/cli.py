"""Command-line groups attached to ``flask`` (SPEC §2)."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from app import state
from app.cli_keys import keys_cli, migration_cli
from app.core import users as user_service
from app.core.clients import ClientError, create_client
from app.extensions import db
from app.security.revocation import revocations

users_cli = AppGroup("users", help="Create and manage users.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _create(username: str, roles: tuple[str, ...], password: str) -> None:
    try:
        user = user_service.create_user(db.session(), username, password, roles, state.now())
    except user_service.UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created user {user.username} (id {user.id}, roles: {', '.join(user.roles) or '-'})")


@users_cli.command("create")
@click.argument("username")
@click.option("--role", "roles", multiple=True, help="Role to grant; repeatable.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_command(username: str, roles: tuple[str, ...], password_stdin: bool) -> None:
    """Create a user."""
    _create(username, roles, _read_password(password_stdin))


@users_cli.command("create-admin")
@click.option("--username", prompt="Admin username", help="Name of the new admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_admin_command(username: str, password_stdin: bool) -> None:
    """Create a user with the admin role."""
    _create(username, ("admin",), _read_password(password_stdin))


revocations_cli = AppGroup("revocations", help="The revocation store.")
clients_cli = AppGroup("clients", help="Service clients of /oauth/introspect and /oauth/revoke.")


@clients_cli.command("create")
@click.argument("name")
def create_client_command(name: str) -> None:
    """Register a service client; its secret is printed once and stored hashed."""
    try:
        client, secret = create_client(db.session(), name, state.now())
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"client_id:     {client.client_id}")
    click.echo(f"client_secret: {secret}")
    click.echo("(the secret is not stored in clear and cannot be shown again)")


@revocations_cli.command("purge")
def purge_command() -> None:
    """Delete revocations that outlived everything they revoke."""
    removed = revocations().purge(state.now())
    click.echo(f"purged {removed} expired revocation(s)")


def init_app(app: Flask) -> None:
    """Attach the CLI groups to ``app``."""
    for group in (users_cli, keys_cli, migration_cli, revocations_cli, clients_cli):
        app.cli.add_command(group)
