"""``fhirhub clients add|list|show|rotate|revoke``: the OAuth clients (issue 13).

A client's secret is printed once, by ``add`` and ``rotate``, on standard output alone on its
line after the client's record; it is not kept anywhere (only its hash is).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fhirhub.auth.roles import Role
from fhirhub.config import get_settings

if TYPE_CHECKING:
    from fhirhub.auth.clients import Client, ClientStore

clients = typer.Typer(
    help="The OAuth clients that may call fhirhub: add, list, show, rotate, revoke.",
    no_args_is_help=True,
)


@contextmanager
def _store() -> Iterator[ClientStore]:
    from fhirhub.auth.clients import ClientError, ClientStore
    from fhirhub.auth.errors import AuthError
    from fhirhub.storage.engine import make_engine, prepare

    settings = get_settings()
    prepare(settings.database_url, migrate_if_behind=settings.migrates_itself)
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        yield ClientStore(engine)
    except (ClientError, AuthError) as exc:
        typer.echo(f"fhirhub: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


def _read_jwks(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        typer.echo(f"fhirhub: {path} is not JSON (a JSON Web Key Set)", err=True)
        raise typer.Exit(1) from None
    if not isinstance(data, dict):
        typer.echo(f"fhirhub: {path} is not a JSON Web Key Set", err=True)
        raise typer.Exit(1)
    return data


def _check_adapter(name: str | None) -> None:
    if name is None:
        return
    from fhirhub.ingest import adapters

    known = adapters.names()
    if name not in known:
        typer.echo(
            f"fhirhub: no source adapter {name!r} (installed: {', '.join(known) or 'none'})",
            err=True,
        )
        raise typer.Exit(1)


def _print(client: Client, secret: str | None) -> None:
    typer.echo(json.dumps(client.describe(), indent=2))
    if secret is not None:
        typer.echo("client secret (shown this once, keep it safe; only its hash is stored):")
        typer.echo(secret)


JwksOption = Annotated[
    Path | None,
    typer.Option("--jwks", help="File of the client's public JWKS (private_key_jwt).", exists=True),
]
JwksUrlOption = Annotated[
    str | None, typer.Option("--jwks-url", help="https URL of the client's public JWKS.")
]


@clients.command()
def add(
    client_id: Annotated[str, typer.Argument(help="The client id, e.g. pkm-wolio.")],
    role: Annotated[Role, typer.Option(help="What the client is.")],
    organization: Annotated[
        str | None,
        typer.Option(help="A facility's Organization, as Organization/<id>."),
    ] = None,
    adapter: Annotated[
        str | None, typer.Option(help="A facility's source adapter (its Bundles go through it).")
    ] = None,
    jwks: JwksOption = None,
    jwks_url: JwksUrlOption = None,
    scope: Annotated[
        str, typer.Option(help="SMART scopes to allow, within the role's (default: all of them).")
    ] = "",
) -> None:
    """Register a client. Without --jwks or --jwks-url it authenticates with a secret, printed
    here once."""
    _check_adapter(adapter)
    keys = _read_jwks(jwks)
    with _store() as store:
        client, secret = store.add(
            client_id,
            role,
            organization=organization,
            adapter=adapter,
            jwks=keys,
            jwks_url=jwks_url,
            scope=scope,
        )
    _print(client, secret)


@clients.command("list")
def list_() -> None:
    """One line per client: id, role, organization, authentication, status."""
    with _store() as store:
        found = store.list()
    for c in found:
        typer.echo(
            f"{c.client_id}\t{c.role.value}\t{c.organization or '-'}\t{c.authentication}\t"
            f"{c.status}"
        )


@clients.command()
def show(client_id: Annotated[str, typer.Argument(help="The client id.")]) -> None:
    """A client's record as JSON (never its secret)."""
    with _store() as store:
        client = store.get(client_id)
    if client is None:
        typer.echo(f"fhirhub: no client {client_id!r}", err=True)
        raise typer.Exit(1)
    _print(client, None)


@clients.command()
def rotate(
    client_id: Annotated[str, typer.Argument(help="The client id.")],
    jwks: JwksOption = None,
    jwks_url: JwksUrlOption = None,
) -> None:
    """A new secret (printed once; the old one stops working now), or a JWKS client's new
    keys."""
    keys = _read_jwks(jwks)
    with _store() as store:
        client, secret = store.rotate(client_id, jwks=keys, jwks_url=jwks_url)
    _print(client, secret)


@clients.command()
def revoke(client_id: Annotated[str, typer.Argument(help="The client id.")]) -> None:
    """The client gets no more tokens, and the ones it holds are refused."""
    with _store() as store:
        client = store.revoke(client_id)
    typer.echo(f"client {client.client_id} revoked")
