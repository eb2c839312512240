"""Staging values (the inventory is inventory/staging.py)."""

environment = "staging"
outputs_source = "pulumi"
pulumi_stack = "staging"
backup_key_prefix = "pre-split/staging"
