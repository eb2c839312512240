"""Real local stand-ins for the production servers, used by the tests and the rehearsal.

- `postgres.PostgresServer`: a throwaway PostgreSQL 15 or 17 cluster.
- `pgbouncer.PgBouncer`: a real PgBouncer in front of one of those clusters.
- `dbaas.Dbaas`: the DigitalOcean managed PostgreSQL stand-in (TLS-only PG17, a non-superuser
  `doadmin`, a transaction-mode pool).
- `tls`: a certificate authority and server certificates.
- `sshd.SshHost`: a real sshd on loopback with an unprivileged deploy user: the VPS.
- `s3.S3Server`: moto's S3 server in server mode: DigitalOcean Spaces.
- `host`: the fixture back-office app installed on that host and run under pm2, and the `Vps`
  composite (old `handled` on PostgreSQL 15, `handled_data` on 17, the app).
- `handled_data`: a realistic `handled` database generated at a chosen scale.
- `netns`: the VPS's own network namespace and address (DBaaS trusts only that address), or
  loopback where the machine has no network namespaces.
- `system`: the unprivileged service user, free ports and owned directories.
- `cleanup`: every stand-in stops at interpreter exit unless detached (`StandIn.detach`), which
  leaves it running and describes it as `Leftover`s; `leftovers.sweep` removes those later.
"""
