"""Staging values (the inventory is inventory/staging.py)."""

environment = "staging"
secrets_source = "pulumi"
pulumi_stack = "staging"
pool_size = 10
backup_bucket = "handled-staging-pg-backups"
s3_endpoint = "https://nyc3.digitaloceanspaces.com"
backup_key_prefix = "pre-split/staging"
