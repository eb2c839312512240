"""Run the real Pulumi program (``infra/__main__.py``) under `pulumi.runtime.set_mocks`.

`run_program("prod")` loads the config from ``Pulumi.prod.yaml`` exactly as Pulumi would (every
value as text, lists and booleans as JSON), runs ``infra/__main__.py`` with `runpy`, and returns a
`ProgramRun`: every registered resource (type, name, inputs as the provider would receive them,
parent URN, protect flag), every provider function call, and the stack outputs with their secrecy.

Mock inputs arrive camelCase and with integers as floats; the mock outputs mimic DigitalOcean's
(port 25060 for the cluster, 25061 for the pool, a generated password with characters that need
percent-encoding).
"""

from __future__ import annotations

import asyncio
import json
import runpy
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format  # type: ignore[import-untyped]
from pulumi.runtime import settings
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

# The provider warns at import about resources it renamed (Gradient AI), none of which is used:
# import it here, quietly, before the program does.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import pulumi_digitalocean  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "infra" / "__main__.py"
PROJECT = "handled-infra"

CLUSTER = "digitalocean:index/databaseCluster:DatabaseCluster"
DATABASE = "digitalocean:index/databaseDb:DatabaseDb"
USER = "digitalocean:index/databaseUser:DatabaseUser"
POOL = "digitalocean:index/databaseConnectionPool:DatabaseConnectionPool"
FIREWALL = "digitalocean:index/databaseFirewall:DatabaseFirewall"
PG_CONFIG = "digitalocean:index/databasePostgresqlConfig:DatabasePostgresqlConfig"
ALERT = "digitalocean:index/monitorAlert:MonitorAlert"
BUCKET = "digitalocean:index/spacesBucket:SpacesBucket"
PASSWORD = "random:index/randomPassword:RandomPassword"
GET_CA = "digitalocean:index/getDatabaseCa:getDatabaseCa"
GET_DROPLET = "digitalocean:index/getDroplet:getDroplet"

CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIEQTCCAqmgAwIBAgIUmock\n-----END CERTIFICATE-----\n"
DROPLET_IP = "159.203.64.10"
USER_PASSWORD = "AVNS_p@ss/w:rd#1"
DROPLET_ID = 4242
#: The secret signature of a serialised secret value (pulumi/sdk/python/lib/pulumi/runtime/rpc.py).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


@dataclass
class Recorded:
    """One resource as the engine saw it."""

    type: str
    name: str
    custom: bool
    inputs: dict[str, Any]
    urn: str = ""
    parent: str = ""
    protect: bool = False
    #: input name -> URNs of the resources its value came from
    dependencies: dict[str, list[str]] = field(default_factory=dict)
    #: paths of the inputs sent to the engine as secrets, e.g. ``alerts.slacks[0].url``
    secret_inputs: set[str] = field(default_factory=set)


@dataclass
class ProgramRun:
    """Everything one run of the program registered, called and exported."""

    stack: str
    resources: list[Recorded] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def of_type(self, token: str) -> list[Recorded]:
        """The resources of one type token."""
        return [r for r in self.resources if r.type == token]

    def one(self, token: str) -> Recorded:
        """The single resource of a type token; fails if there are none or several."""
        found = self.of_type(token)
        assert len(found) == 1, f"expected exactly one {token}, got {[r.name for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> Recorded:
        """The resource with this URN."""
        return next(r for r in self.resources if r.urn == urn)


class RecordingMocks(pulumi.runtime.Mocks):
    """Mocks that record inputs and calls and answer like DigitalOcean would."""

    def __init__(self, run: ProgramRun, droplet_region: str) -> None:
        self.run = run
        self.droplet_region = droplet_region
        self.hosts: dict[str, str] = {}
        #: The resource the current thread is registering (registrations run in a thread pool).
        self.current = threading.local()

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        recorded = Recorded(
            type=args.typ, name=args.name, custom=bool(args.custom), inputs=_revealed(args.inputs)
        )
        self.run.resources.append(recorded)
        self.current.resource = recorded
        resource_id = f"{args.name}-id"
        state = dict(args.inputs)
        inputs = args.inputs
        if args.typ == CLUSTER:
            host = f"{inputs['name']}-do-user-1.k.db.ondigitalocean.com"
            self.hosts[resource_id] = host
            state |= {"host": host, "privateHost": f"private-{host}", "port": 25060}
            state |= {"user": "doadmin", "password": "doadmin-secret", "database": "defaultdb"}
        elif args.typ == USER:
            state |= {"password": USER_PASSWORD, "role": "normal"}
        elif args.typ == POOL:
            host = self.hosts[inputs["clusterId"]]
            state |= {"host": host, "privateHost": f"private-{host}", "port": 25061}
        elif args.typ == BUCKET:
            region = inputs.get("region", "nyc3")
            state |= {"endpoint": f"{region}.digitaloceanspaces.com"}
            state |= {"bucketDomainName": f"{inputs['name']}.{region}.digitaloceanspaces.com"}
        elif args.typ == PASSWORD:
            state |= {"result": "x" * int(inputs["length"])}
        return resource_id, state

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        self.run.calls.append((args.token, dict(args.args)))
        if args.token == GET_CA:
            cluster_id = args.args["clusterId"]
            return {"certificate": CA_PEM, "clusterId": cluster_id, "id": cluster_id}
        if args.token == GET_DROPLET:
            name = args.args["name"]
            droplet = {"id": DROPLET_ID, "name": name, "ipv4Address": DROPLET_IP}
            return droplet | {"region": self.droplet_region, "status": "active"}
        raise NotImplementedError(f"no mock for provider function {args.token}")


class RecordingMonitor(MockMonitor):
    """The mock monitor, also recording each registration's URN, parent and protect flag."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            recorded: Recorded = self.recording.current.resource
            assert (recorded.type, recorded.name) == (request.type, request.name)
            recorded.urn = response.urn
            recorded.parent = request.parent
            recorded.protect = request.protect
            recorded.dependencies = {
                key: list(deps.urns) for key, deps in request.propertyDependencies.items()
            }
            recorded.secret_inputs = _secret_paths(json_format.MessageToDict(request.object))
        return response


def _revealed(value: Any) -> Any:
    """``value`` with every secret wrapper replaced by its value (what the provider gets)."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return _revealed(value["value"])
        return {k: _revealed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_revealed(v) for v in value]
    return value


def _secret_paths(value: Any, path: str = "") -> set[str]:
    """The paths of the secret values in a serialised property map (camelCase, as sent)."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return {path}
        return {p for k, v in value.items() for p in _secret_paths(v, f"{path}.{k}".lstrip("."))}
    if isinstance(value, list):
        return {p for i, v in enumerate(value) for p in _secret_paths(v, f"{path}[{i}]")}
    return set()


def stack_config(stack: str) -> dict[str, str]:
    """The stack's ``handled-infra:*`` values from ``Pulumi.<stack>.yaml``, as Pulumi holds them."""
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    raw: dict[str, str] = {}
    for key, value in document["config"].items():
        namespace, _, name = key.partition(":")
        assert namespace == PROJECT, f"{key} in Pulumi.{stack}.yaml is outside {PROJECT}"
        raw[name] = value if isinstance(value, str) else json.dumps(value)
    return raw


def run_program(
    stack: str,
    *,
    overrides: Mapping[str, str] | None = None,
    remove: tuple[str, ...] = (),
    droplet_region: str = "nyc3",
    run: ProgramRun | None = None,
    secrets: Mapping[str, str] | None = None,
) -> ProgramRun:
    """Run ``infra/__main__.py`` for `stack` under mocks; config from ``Pulumi.<stack>.yaml``.

    `overrides` replace or add raw config values, `remove` drops keys, `secrets` add values the
    stack holds encrypted (``pulumi config set --secret``); pass `run` to inspect what was
    recorded when the program raises.
    """
    config = stack_config(stack) | dict(overrides or {}) | dict(secrets or {})
    for key in remove:
        config.pop(key, None)
    run = run if run is not None else ProgramRun(stack=stack)
    mocks = RecordingMocks(run, droplet_region)

    async def collect(outputs: Mapping[str, Any]) -> None:
        for name, value in outputs.items():
            output = pulumi.Output.from_input(value)
            run.outputs[name] = await output.future()
            if await output.is_secret():
                run.secret_outputs.add(name)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> pulumi.Output[None]:
        runpy.run_path(str(MAIN), run_name="__main__")
        root = settings.get_root_resource()
        assert root is not None
        return pulumi.Output.from_input(collect(root.outputs))  # type: ignore[attr-defined]

    with warnings.catch_warnings():
        # set_mocks creates the root stack's futures before an event loop runs; harmless here.
        warnings.filterwarnings("ignore", "There is no current event loop", DeprecationWarning)
        settings.reset_options(project=PROJECT, stack=stack)
        pulumi.runtime.set_mocks(
            mocks, project=PROJECT, stack=stack, preview=False, monitor=RecordingMonitor(mocks)
        )
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{key}": value for key, value in config.items()},
        secret_keys=[f"{PROJECT}:{key}" for key in secrets or {}],
    )
    try:
        program()
    except Exception:
        _quiet_abandoned_futures()
        raise
    return run


def _quiet_abandoned_futures() -> None:
    """After a run that failed on purpose, don't log the resources' failed futures at exit.

    The error itself reaches the test; asyncio would also print every future that carried it
    ("Future exception was never retrieved") when they are garbage-collected.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loop = asyncio.get_event_loop()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != "Future exception was never retrieved":
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
