"""Remote side of the DATA database step: the role (password as a SCRAM verifier) and the
database owned by it."""

from __future__ import annotations

from dataclasses import dataclass

from deploy.remote.journal import Journal
from deploy.remote.pg import ident, literal, psql, psql_stdin, scram_verifier, try_psql
from deploy.remote.runtime import Context, say


@dataclass(frozen=True)
class DataDb:
    """The DATA role and database (``data_admin`` and ``data_password`` travel as secrets)."""

    role: str
    database: str


@dataclass(frozen=True)
class DataDbState:
    role: bool = False
    database: bool = False
    owner: str | None = None
    login: bool = False

    @property
    def ready(self) -> bool:
        return self.database and self.login


def state(req: DataDb, ctx: Context) -> DataDbState:
    """Fact: do the DATA role (able to log in with its password) and database exist?"""
    rows = psql(
        ctx.conn("data_admin"),
        f"SELECT (SELECT count(*) FROM pg_roles WHERE rolname = {literal(req.role)}),"
        f" (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname ="
        f" {literal(req.database)})",
        what="read the DATA server's roles and databases",
    )
    count, owner = rows[0].split("|")
    login = False
    if count == "1":
        conn = {**ctx.conn("data_admin"), "PGUSER": req.role}
        conn["PGPASSWORD"] = str(ctx.secret("data_password"))
        conn["PGDATABASE"] = req.database if owner else "postgres"
        login, _ = try_psql(conn, "SELECT 1", "login")
    return DataDbState(count == "1", bool(owner), owner or None, login)


def create(req: DataDb, ctx: Context) -> None:
    """Create the DATA role and database when missing (the password sent as a SCRAM verifier)."""
    with Journal(ctx).step("data-database") as journal:
        found = state(req, ctx)
        admin = ctx.conn("data_admin")
        verifier = literal(scram_verifier(str(ctx.secret("data_password"))))
        if not found.role:
            psql_stdin(
                admin,
                f"CREATE ROLE {ident(req.role)} LOGIN PASSWORD {verifier};\n",
                what=f"create role {req.role}",
            )
            say(f"created role {req.role}")
        elif not found.login:
            psql_stdin(
                admin,
                f"ALTER ROLE {ident(req.role)} LOGIN PASSWORD {verifier};\n",
                what=f"set role {req.role}'s password",
            )
            say(f"set role {req.role}'s password")
        if not found.database:
            psql(
                admin,
                f"CREATE DATABASE {ident(req.database)} OWNER {ident(req.role)}",
                what=f"create database {req.database}",
            )
            say(f"created database {req.database} owned by {req.role}")
        elif found.owner != req.role:
            psql(
                admin,
                f"ALTER DATABASE {ident(req.database)} OWNER TO {ident(req.role)}",
                what=f"give {req.database} to {req.role}",
            )
            say(f"database {req.database} now owned by {req.role}")
        journal.update("data-database", data_database={"role": req.role, "database": req.database})
