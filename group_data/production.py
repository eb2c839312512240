"""Production values (the inventory is inventory/production.py)."""

environment = "production"
secrets_source = "pulumi"
pulumi_stack = "prod"
backup_bucket = "handled-prod-pg-backups"
s3_endpoint = "https://nyc3.digitaloceanspaces.com"
backup_key_prefix = "pre-split/production"
