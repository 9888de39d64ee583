"""What an admin can change, audited once here; the admin API, the admin page and the
command line call these. The audit row names the admin as actor; a change made from the
command line (no request) has no actor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import has_request_context

from .. import state
from ..accounts import has_second_factor
from ..audit import audit
from ..config import STEP_UP_MAX_AGE
from ..core import clients as client_service
from ..core import keys as key_service
from ..core import mfa as mfa_service
from ..core import passkey_store
from ..core import users as user_service
from ..errors import Conflict, Forbidden, NotFound, StepUpRequired
from ..extensions import db
from ..models import AuthSession, ServiceClient, SigningKey, User
from ..security import current_principal, keyops
from ..security.revocation import revoke_session, revoke_user_tokens

__all__ = [
    "STEP_UP_MAX_AGE",
    "create_client",
    "create_user",
    "delete_client",
    "end_session",
    "reset_mfa",
    "require_recent_step_up",
    "revoke_all_tokens",
    "revoke_key",
    "rotate_client_secret",
    "rotate_keys",
    "set_client_scopes",
    "set_phase",
    "set_temporary_password",
    "update_user_account",
]



def _actor() -> int | None:
    return current_principal().user_id if has_request_context() else None


def require_recent_step_up() -> None:
    """An admin with a second factor (TOTP or a passkey) must have stepped up recently
    (by either) to change anything."""
    principal = current_principal()
    if not has_second_factor(principal.user_id):
        return
    fresh = principal.auth_time is not None and \
        state.now().timestamp() - principal.auth_time <= STEP_UP_MAX_AGE
    if principal.acr != "aal2" or not fresh:
        raise StepUpRequired(STEP_UP_MAX_AGE)


def create_user(username: str, password: str, roles: list[str], *,
                temporary: bool = False) -> User:
    """Create a user; ``temporary``: the password must be replaced at the first login.

    A refusal is audited too (outcome ``failure`` and why), never with the password.
    """
    try:
        user = user_service.create_user(db.session(), username, password, roles, state.now(),
                                        temporary=temporary)
    except user_service.UserError as exc:  # answered by app.errors.CORE_ERRORS
        _refused_creation(username, _REFUSALS.get(exc.code, "invalid"))
        raise
    audit("USER_CREATED", user_id=user.id, actor_id=_actor(),
          details={"username": user.username, "roles": user.roles, "temporary": temporary})
    return user


_REFUSALS = {"username_taken": "username_taken", "weak_password": "weak_password"}


def _refused_creation(username: str, reason: str) -> None:
    audit("USER_CREATED", user_id=None, actor_id=_actor(), result="failure", reason=reason,
          details={"username": username[:64]})


def reset_mfa(user: User) -> bool:
    """Remove the user's TOTP credential, recovery codes and passkeys (a lost phone or key)
    and end their tokens, so that nothing signed in with an old second factor lives on.
    Returns whether MFA (TOTP or a passkey) was on."""
    was_on = mfa_service.is_enabled(db.session(), user.id)
    mfa_service.disable(db.session(), user.id)
    passkeys = passkey_store.remove_all(db.session(), user.id)
    revoke_user_tokens(user.id, reason="mfa_reset", actor_id=_actor())
    details: dict[str, Any] = {"was_enabled": was_on}  # TOTP, as before passkeys
    if passkeys:
        details["passkeys_removed"] = passkeys
    audit("USER_MFA_RESET", user_id=user.id, actor_id=_actor(), details=details)
    return was_on or passkeys > 0


def set_temporary_password(user: User, password: str | None) -> str:
    """Give ``user`` a temporary password (``None``: a generated one), returned for the
    admin to pass on; the user's tokens end and the next login must replace it."""
    chosen = password if password is not None else user_service.generate_password()
    try:
        user_service.set_temporary_password(db.session(), user, chosen, state.now())
    except user_service.WeakPassword:
        audit("USER_PASSWORD_SET", user_id=user.id, actor_id=_actor(), result="failure",
              reason="weak_password")
        raise
    revoke_user_tokens(user.id, reason="temporary_password", actor_id=_actor())
    audit("USER_PASSWORD_SET", user_id=user.id, actor_id=_actor(),
          details={"temporary": True, "generated": password is None})
    return chosen


def update_user_account(user: User, *, disabled: bool | None = None,
                        roles: list[str] | None = None) -> User:
    """Set roles and/or the disabled flag; the user's tokens end so the change bites now.

    An admin cannot disable themselves or take the admin role from themselves: the
    last admin would lock everyone out (another admin, or the CLI, can).
    """
    if user.id == _actor() and (disabled or (roles is not None and "admin" not in roles)):
        raise Forbidden("You cannot disable yourself or take the admin role from yourself.")
    changed: dict[str, Any] = {}
    if roles is not None:
        user.roles = changed["roles"] = sorted(set(roles))
    if disabled is not None:
        user.disabled = changed["disabled"] = disabled
    db.session.commit()
    if disabled:
        revoke_user_tokens(user.id, reason="user_disabled", actor_id=_actor())
    elif roles is not None:  # tokens carry roles: make the user pick up the new ones
        revoke_user_tokens(user.id, reason="roles_changed", actor_id=_actor())
    audit("USER_UPDATED", user_id=user.id, actor_id=_actor(), details=changed)
    return user


def revoke_all_tokens(user: User) -> None:
    """Every token and session of ``user``, now."""
    revoke_user_tokens(user.id, reason="admin", actor_id=_actor())


def end_session(session_id: str) -> AuthSession:
    """End any live session."""
    sess = db.session.get(AuthSession, session_id)
    if sess is None or sess.revoked_at is not None:
        raise NotFound("No such session.")
    revoke_session(sess, reason="admin", actor_id=_actor())
    return sess


def rotate_keys(*, force: bool = False) -> key_service.RotationResult:
    """Promote the standby key (SPEC §4)."""
    result = keyops.rotate_signing_keys(force=force)
    audit("KEY_ROTATED", actor_id=_actor(), kid=result.active_kid,
          details={"retired": result.retired_kid, "standby": result.standby_kid})
    return result


def revoke_key(kid: str) -> SigningKey:
    """Revoke a live signing key: every token it signed fails from the next request."""
    row = keyops.revoke_signing_key(kid)
    audit("KEY_REVOKED", actor_id=_actor(), kid=kid)
    return row


def set_phase(phase: str) -> None:
    """Move the HS256 migration to ``phase``."""
    try:
        previous = keyops.set_migration_phase(phase)
    except ValueError as exc:
        raise Conflict(str(exc)) from None
    audit("MIGRATION_PHASE_CHANGED", actor_id=_actor(), details={"from": previous, "to": phase})


def create_client(name: str, scopes: list[str]) -> tuple[ServiceClient, str]:
    """Register a service client; its secret is returned once (never audited)."""
    client, secret = client_service.create_client(db.session(), name, state.now(), scopes)
    audit("CLIENT_CREATED", user_id=None, actor_id=_actor(),
          details={"client_id": client.client_id, "name": client.name, "scopes": client.scopes})
    return client, secret


_T = TypeVar("_T")


def _client_change(event: str, client_id: str, change: Callable[[], _T], **details: Any) -> _T:
    """Run ``change`` on a client; audit it (a missing client as a failure) and return it."""
    try:
        result = change()
    except client_service.UnknownClient:
        audit(event, user_id=None, actor_id=_actor(), result="failure", reason="unknown_client",
              details={"client_id": client_id[:64]})
        raise
    audit(event, user_id=None, actor_id=_actor(), details={"client_id": client_id, **details})
    return result


def rotate_client_secret(client_id: str) -> tuple[ServiceClient, str]:
    """A new secret, returned once; the old one works for CLIENT_SECRET_OVERLAP more."""
    overlap = state.settings().client_secret_overlap
    return _client_change(
        "CLIENT_SECRET_ROTATED", client_id,
        lambda: client_service.rotate_secret(db.session(), client_id, state.now(), overlap),
        overlap_seconds=int(overlap.total_seconds()))


def set_client_scopes(client_id: str, scopes: list[str]) -> ServiceClient:
    """Replace what the client may call."""
    return _client_change(
        "CLIENT_UPDATED", client_id,
        lambda: client_service.set_scopes(db.session(), client_id, scopes),
        scopes=sorted(set(scopes)))


def delete_client(client_id: str) -> None:
    """Remove a client; both its secrets stop working at once."""
    _client_change("CLIENT_DELETED", client_id,
                   lambda: client_service.delete_client(db.session(), client_id))
