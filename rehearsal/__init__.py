"""The local rehearsal of the maintenance window: run it on stand-ins, then report."""
