"""The smoke checks' user in the old database: what an operator creates once before the window.

``add_smoke_user(url, email, password)`` adds (idempotently) the permissions the fixture app
asks for (``users.manage``, ``roles.manage``, ``imports.manage``), a role ``smoke-operator``
holding them, and the user with an scrypt hash of ``password`` in the format the app checks
(``standins/app/apps/backoffice/api/src/auth.js``). The seeded users' hashes are
bcrypt-shaped text nobody can log in with: this user is the one that can.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

import psycopg

SMOKE_EMAIL = "smoke@handled.example"
"""The example's smoke user (``smoke_user`` in group_data/all.py)."""
SMOKE_ROLE = "smoke-operator"
SMOKE_PERMISSIONS = ("users.manage", "roles.manage", "imports.manage")


def password_hash(password: str, *, n: int = 16384, r: int = 8, p: int = 1) -> str:
    """``scrypt$N$r$p$<salt>$<key>`` (base64), as the app writes and checks it."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=64, maxmem=1 << 26)
    encoded = [base64.b64encode(x).decode("ascii") for x in (salt, key)]
    return f"scrypt${n}${r}${p}${encoded[0]}${encoded[1]}"


def add_smoke_user(url: str, email: str, password: str) -> None:
    """The permissions, the role and the user (its password and role set anew each call)."""
    with psycopg.connect(url) as conn:
        for code in SMOKE_PERMISSIONS:
            conn.execute(
                "INSERT INTO config.permissions (code, description) VALUES (%s, %s)"
                " ON CONFLICT (code) DO NOTHING",
                [code, f"{code} (the smoke checks' user needs it)"],
            )
        conn.execute(
            "INSERT INTO config.roles (name, description, created_at) VALUES (%s, %s, now())"
            " ON CONFLICT (name) DO NOTHING",
            [SMOKE_ROLE, "the smoke checks' user"],
        )
        conn.execute(
            "INSERT INTO config.role_permissions (role_id, permission_id)"
            " SELECT r.id, p.id FROM config.roles r, config.permissions p"
            " WHERE r.name = %s AND p.code = ANY(%s) ON CONFLICT DO NOTHING",
            [SMOKE_ROLE, list(SMOKE_PERMISSIONS)],
        )
        conn.execute(
            "INSERT INTO config.users (email, display_name, password_hash, created_at)"
            " VALUES (%s, 'Smoke checks', %s, now())"
            " ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash,"
            " is_active = true",
            [email, password_hash(password)],
        )
        conn.execute(
            "INSERT INTO config.user_roles (user_id, role_id, granted_at)"
            " SELECT u.id, r.id, now() FROM config.users u, config.roles r"
            " WHERE u.email = %s AND r.name = %s ON CONFLICT DO NOTHING",
            [email, SMOKE_ROLE],
        )
