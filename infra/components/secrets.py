"""`AppSecrets`: secrets the application needs that no cloud resource provides.

``AUTH_SECRET`` is generated once per stack by `pulumi_random` and kept in the stack's state,
encrypted; it only leaves as a secret output.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random


@dataclass(frozen=True)
class AppSecretsArgs:
    """Length and alphabet of ``AUTH_SECRET``: long and URL-safe by default."""

    auth_secret_length: int = 64
    special_characters: bool = False


class AppSecrets(pulumi.ComponentResource):
    """The application's generated secrets."""

    auth_secret: pulumi.Output[str]

    def __init__(
        self, name: str, args: AppSecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("handled:infra:AppSecrets", name, {}, opts)
        auth = random.RandomPassword(
            f"{name}-auth-secret",
            length=args.auth_secret_length,
            special=args.special_characters,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.auth_secret = pulumi.Output.secret(auth.result)
        self.register_outputs({"auth_secret": self.auth_secret})
