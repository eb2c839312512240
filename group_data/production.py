"""Production values (the inventory is inventory/production.py)."""

environment = "production"
outputs_source = "pulumi"
pulumi_stack = "prod"
backup_key_prefix = "pre-split/production"
