"""CrossGuard policies for the handled PRIMARY database on DigitalOcean.

The checks are plain functions (`policy.resource_rules`, `policy.stack_rules`) wrapped into
`pulumi_policy` policies in `policy.policies`; only ``policy/__main__.py`` builds the
`PolicyPack`, which starts a server and blocks, so everything else imports and tests freely.
The pack deliberately shares no code with ``infra/``: it checks the program, not itself.
"""
