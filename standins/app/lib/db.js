'use strict'
// Connection settings for node-postgres from the app's Prisma-style URLs.
//
// Prisma-only query parameters (pgbouncer=true, connection_limit, ...) are removed, and TLS is
// set up here from sslmode/sslrootcert with libpq's meaning, so the behaviour does not depend
// on the pg-connection-string version:
//   disable -> no TLS; allow/prefer/require -> TLS without verification (require with a
//   sslrootcert verifies the CA, as libpq does); verify-ca -> CA only; verify-full -> CA and
//   host name (or IP address) against the certificate.
// Error messages name the variable, never the URL (it holds the password).

const fs = require('fs')
const net = require('net')
const { Pool } = require('pg')
const { splitMode } = require('./env')

const PRISMA_ONLY = [
  'pgbouncer',
  'connection_limit',
  'pool_timeout',
  'schema',
  'sslaccept',
  'sslidentity',
  'statement_cache_size',
  'socket_timeout',
  'max_connection_lifetime',
  'max_idle_connection_lifetime',
  'uselibpqcompat',
]
const TLS_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'sslpassword', 'sslnegotiation']

class ConfigError extends Error {}

function describeUrl(u) {
  return `${u.hostname}:${u.port || 5432}${u.pathname}`
}

// Parse `url` (held in env var `variable`) into { config, info } for pg.Client / pg.Pool.
function pgConfig(variable, url, { connectTimeoutMs = 3000 } = {}) {
  if (!url) throw new ConfigError(`${variable} is not set`)
  let u
  try {
    u = new URL(url)
  } catch {
    throw new ConfigError(`${variable} is not a valid URL`)
  }
  if (u.protocol !== 'postgresql:' && u.protocol !== 'postgres:') {
    throw new ConfigError(`${variable} is not a postgresql:// URL`)
  }
  const params = u.searchParams
  const pooled = params.get('pgbouncer') === 'true'
  const limit = Number.parseInt(params.get('connection_limit') || '', 10)
  const timeoutSeconds = Number.parseInt(params.get('connect_timeout') || '', 10)
  const sslmode = params.get('sslmode') || 'disable'
  const rootcert = params.get('sslrootcert')
  for (const key of [...PRISMA_ONLY, ...TLS_PARAMS, 'connect_timeout']) params.delete(key)

  let ssl = false
  if (sslmode === 'verify-full' || sslmode === 'verify-ca' || (sslmode === 'require' && rootcert)) {
    if (!rootcert) throw new ConfigError(`${variable} has sslmode=${sslmode} but no sslrootcert`)
    let ca
    try {
      ca = fs.readFileSync(rootcert, 'utf8')
    } catch (err) {
      throw new ConfigError(`${variable}: cannot read sslrootcert ${rootcert} (${err.code || err.message})`)
    }
    ssl = { ca, rejectUnauthorized: true }
    if (sslmode === 'verify-full') {
      if (net.isIP(u.hostname) === 0) ssl.servername = u.hostname
    } else {
      ssl.checkServerIdentity = () => undefined
    }
  } else if (sslmode === 'require' || sslmode === 'prefer' || sslmode === 'allow') {
    ssl = { rejectUnauthorized: false }
  } else if (sslmode !== 'disable') {
    throw new ConfigError(`${variable} has an unknown sslmode ${JSON.stringify(sslmode)}`)
  }

  const config = {
    connectionString: u.toString(),
    ssl,
    connectionTimeoutMillis: Number.isFinite(timeoutSeconds) ? timeoutSeconds * 1000 : connectTimeoutMs,
    query_timeout: 5000,
  }
  if (Number.isFinite(limit) && limit > 0) config.max = limit
  const info = {
    variable,
    target: describeUrl(u),
    database: decodeURIComponent(u.pathname.slice(1)),
    sslmode,
    pooled,
  }
  return { config, info }
}

// The app's databases for the current mode: { mode, primary, data } where each is
// { name, variable, url } (data is primary in single-database mode).
function databaseTargets(env = process.env) {
  if (splitMode(env)) {
    return {
      mode: 'split',
      primary: { name: 'primary', variable: 'PRIMARY_DATABASE_URL', url: env.PRIMARY_DATABASE_URL },
      data: { name: 'data', variable: 'DATA_DATABASE_URL', url: env.DATA_DATABASE_URL },
    }
  }
  const variable = env.DATABASE_URL ? 'DATABASE_URL' : 'PRIMARY_DATABASE_URL'
  const single = { name: 'primary', variable, url: env[variable] }
  return { mode: 'single', primary: single, data: single }
}

// A lazily created pool per target; a broken configuration is kept as an error to report.
function makePool(target, { max = 5 } = {}) {
  try {
    const { config, info } = pgConfig(target.variable, target.url)
    const pool = new Pool({ max, idleTimeoutMillis: 10000, ...config })
    pool.on('error', () => {}) // idle client errors (server restarts) are reported by queries
    return { pool, info, error: null }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    return { pool: null, info: { variable: target.variable }, error: err.message }
  }
}

module.exports = { ConfigError, pgConfig, databaseTargets, makePool, PRISMA_ONLY }
