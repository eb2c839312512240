"""The Pulumi program for PRIMARY: DigitalOcean Managed PostgreSQL 17 and what surrounds it.

- `infra.config`: the stack's config, read and validated once (`load_config`).
- `infra.stack`: builds the components from that config and returns the stack outputs.
- `infra.components`: the `ComponentResource` classes.
- ``infra/__main__.py``: the entry point Pulumi runs (``main: infra/``).
"""
