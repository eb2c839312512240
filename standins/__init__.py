"""Real local stand-ins for the production servers, used by the tests and the rehearsal.

- `postgres.PostgresServer`: a throwaway PostgreSQL 15 or 17 cluster.
- `pgbouncer.PgBouncer`: a real PgBouncer in front of one of those clusters.
- `dbaas.Dbaas`: the DigitalOcean managed PostgreSQL stand-in (TLS-only PG17, a non-superuser
  `doadmin`, a transaction-mode pool).
- `tls`: a certificate authority and server certificates.
- `system`: the unprivileged service user, free ports and owned directories.
"""
