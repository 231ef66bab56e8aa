"""`workbench users ...`: who may use the workbench (the admin's commands; the gateway checks the role).

A new token is printed once, on stdout and alone on its line, so `TOKEN=$(workbench users add ana)`
works; the gateway keeps only its hash.
"""

import argparse
from typing import Any
from urllib.parse import quote

from wbcli.api import Api
from wbcli.commands import Context


def _user_path(name: str, *rest: str) -> str:
    return "/".join(["/admin/users", quote(name, safe=""), *(quote(part, safe="") for part in rest)])


async def _call(api: Api, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The action's API call: (what it did, the answer)."""
    action = args.action
    if action == "add":
        _, body = await api.request("POST", "/admin/users", json={"name": args.name, "role": args.role})
        return f"added {args.name} as {body['role']}; their API token (shown this once) is on stdout", body
    if action == "list":
        _, body = await api.request("GET", "/admin/users")
        return "", body
    if action == "role":
        _, body = await api.request("PATCH", _user_path(args.name), json={"role": args.role})
        return f"{args.name} is now {body['role']}", body
    if action == "revoke":
        await api.request("DELETE", _user_path(args.name))
        return f"revoked {args.name}: their tokens and sessions no longer work", {}
    if action == "token":
        _, body = await api.request("POST", _user_path(args.name, "tokens"))
        return (
            f"a new token for {args.name} (id {body['token_id']}) is on stdout; revoke the old one when switched",
            body,
        )
    if action == "revoke-token":
        await api.request("DELETE", _user_path(args.name, "tokens", args.token_id))
        return f"revoked token {args.token_id} of {args.name}", {}
    if action == "link":
        _, body = await api.request("POST", _user_path(args.name, "login-link"))
        return f"a one-time login link for {args.name}, valid until {body['expires_at']}, is on stdout", body
    raise ValueError(f"unknown users action {action!r}")


def users(ctx: Context, args: argparse.Namespace) -> int:
    said, body = ctx.call(lambda api: _call(api, args))
    if args.action in ("add", "token"):
        print(body["token"], file=ctx.out)
    elif args.action == "link":
        print(body["url"], file=ctx.out)
    elif args.action == "list":
        for user in body.get("users", []):
            tokens = ",".join(user["token_ids"]) or "-"
            print(f"{user['name']}\t{user['role']}\t{tokens}\t{user['added_at'] or ''}", file=ctx.out)
    if said:
        ctx.say(said)
    return 0
