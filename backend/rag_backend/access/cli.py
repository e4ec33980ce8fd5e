"""`rag-backend users create|list|disable|enable|set-role`: the catalog's users from a shell (the first admin of a
stack, a locked-out admin). Synchronous: no event loop, straight to the catalog."""

from __future__ import annotations

import argparse
import getpass
import sys

from rag_backend.access.passwords import check_password, hash_now
from rag_backend.access.service import normal_email, public_user
from rag_backend.access.store import AccessStore
from rag_backend.core.config import Settings
from rag_backend.errors import DomainError


def users_command(settings: Settings, args: argparse.Namespace) -> int:
    from rag_backend.catalog import open_catalog

    try:
        catalog = open_catalog(settings.database_url, settings.data_dir, 1)
        try:
            return _run(AccessStore(catalog), args)
        finally:
            catalog.close()
    except DomainError as exc:
        print(f"users {args.verb}: {exc.message}", file=sys.stderr)
        return 1


def _password(args: argparse.Namespace) -> str | None:
    if args.no_password:
        return None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise DomainError("the two passwords differ")
    if why := check_password(password):
        raise DomainError(why)
    return hash_now(password)


def _run(store: AccessStore, args: argparse.Namespace) -> int:
    if args.verb == "list":
        for u in map(public_user, store.list_users()):
            state = "disabled" if u["disabled"] else "active"
            print(f"{u['email']}\t{u['role']}\t{state}\t{'sso' if u['sso'] else 'password'}\t{u['name'] or ''}")
        return 0
    email = normal_email(args.email)
    if args.verb == "create":
        store.create_user(email, args.role, _password(args), args.name)
        print(f"created {email} ({args.role})")
        return 0
    fields = {"disable": {"disabled": 1}, "enable": {"disabled": 0}}.get(args.verb) or {"role": args.role}
    if store.update_user(email, **fields) is None:
        print(f"users {args.verb}: no user with e-mail {email}", file=sys.stderr)
        return 1
    print(f"{args.verb} {email}: done")
    return 0
