'use strict'
// The back-office API (fixture): health and a few endpoints that read and write real rows.
//
//   GET  /api/health                 both databases queried with a short timeout
//   GET  /api/version                build id and process start time
//   GET  /api/users/count            config.users on PRIMARY
//   GET  /api/customers/count        customer.customers on PRIMARY
//   GET  /api/carriers               reference.carriers on DATA
//   GET  /api/integration-runs       the latest integration.runs on DATA
//   POST /api/integration-runs       insert into integration.runs on DATA
//   GET  /api/metrics                the session cache's hits and misses
//   the checklist's features (log-in, users, roles, imports): see features.js
//
// Configuration: apps/backoffice/api/.env, read at every start (see lib/env.js);
// the port comes from `--port N` (set by ecosystem.config.js) or PORT.

const fs = require('fs')
const http = require('http')
const path = require('path')
const { loadEnv } = require('../../../../lib/env')
const { databaseTargets, makePool } = require('../../../../lib/db')
const { SessionCache } = require('./auth')
const { features } = require('./features')

const HEALTH_TIMEOUT_MS = 2500
const GENERATED = path.resolve(__dirname, '..', '..', '..', '..', 'node_modules', '.handled-generated', 'clients.json')

function argValue(name) {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch {
    return null
  }
}

const envLoad = loadEnv()
const port = Number.parseInt(argValue('--port') || process.env.PORT || '3001', 10)
const build = readJson(path.join(__dirname, 'build.json'))
const generated = readJson(GENERATED)
const startedAt = new Date().toISOString()
const targets = databaseTargets()

const primary = makePool(targets.primary, { max: 5 })
const data = targets.mode === 'split' ? makePool(targets.data, { max: 10 }) : primary
const clients = { primary, data }
const sessions = new SessionCache()

// Prisma needs its generated client per schema: in split mode, both must have been generated.
function missingClient(name) {
  if (targets.mode !== 'split') return null
  const list = (generated && generated.clients) || []
  return list.includes(name) ? null : `prisma client for ${name} not generated: run pnpm db:generate`
}

function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms}ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

async function checkDatabase(name) {
  const entry = clients[name]
  const result = { connected: false, ...entry.info }
  const notGenerated = missingClient(name)
  if (notGenerated) return { ...result, error: notGenerated }
  if (entry.error) return { ...result, error: entry.error }
  const started = Date.now()
  let client
  try {
    client = await withTimeout(entry.pool.connect(), HEALTH_TIMEOUT_MS, 'connect')
    const res = await withTimeout(
      client.query("SELECT current_database() AS database, current_setting('server_version') AS version"),
      HEALTH_TIMEOUT_MS,
      'query',
    )
    const stream = client.connection && client.connection.stream
    return {
      ...result,
      connected: true,
      database: res.rows[0].database,
      serverVersion: res.rows[0].version,
      tls: Boolean(stream && stream.encrypted),
      latencyMs: Date.now() - started,
    }
  } catch (err) {
    return { ...result, error: String(err.message || err), latencyMs: Date.now() - started }
  } finally {
    if (client) client.release()
  }
}

// Sessions are signed with AUTH_SECRET: without a real one nobody can log in.
function authCheck() {
  const secret = process.env.AUTH_SECRET || ''
  if (secret.length >= 32) return { configured: true }
  return { configured: false, error: secret ? 'AUTH_SECRET is shorter than 32 characters' : 'AUTH_SECRET is not set' }
}

async function health() {
  const [p, d] = await Promise.all([checkDatabase('primary'), checkDatabase('data')])
  const auth = authCheck()
  const ok = p.connected && d.connected && auth.configured
  return {
    status: ok ? 'ok' : 'degraded',
    mode: targets.mode,
    databases: { primary: p, data: d },
    auth,
    sessions: sessions.stats(),
    build: build ? build.id : null,
    pid: process.pid,
    startedAt,
  }
}

async function query(name, text, params) {
  const entry = clients[name]
  if (entry.error) throw Object.assign(new Error(entry.error), { status: 503 })
  return entry.pool.query(text, params)
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk) => {
      body += chunk
      if (body.length > 1048576) reject(Object.assign(new Error('body too large'), { status: 413 }))
    })
    req.on('end', () => resolve(body))
    req.on('error', reject)
  })
}

const routes = {
  'GET /api/health': async () => {
    const body = await health()
    return [body.status === 'ok' ? 200 : 503, body]
  },
  'GET /api/metrics': async () => [200, { sessions: sessions.stats(), pid: process.pid, startedAt }],
  'GET /api/version': async () => [200, { build, startedAt, pid: process.pid, mode: targets.mode }],
  'GET /api/users/count': async () => {
    const res = await query('primary', 'SELECT count(*)::int AS count FROM config.users')
    return [200, { count: res.rows[0].count }]
  },
  'GET /api/customers/count': async () => {
    const res = await query('primary', 'SELECT count(*)::int AS count FROM customer.customers')
    return [200, { count: res.rows[0].count }]
  },
  'GET /api/carriers': async () => {
    const res = await query('data', 'SELECT id, code, name, active FROM reference.carriers ORDER BY id LIMIT 100')
    return [200, { carriers: res.rows }]
  },
  'GET /api/integration-runs': async () => {
    const res = await query(
      'data',
      'SELECT id, connector, started_at, finished_at, ok FROM integration.runs ORDER BY id DESC LIMIT 20',
    )
    return [200, { runs: res.rows }]
  },
  'POST /api/integration-runs': async (req) => {
    let input = {}
    const body = await readBody(req)
    if (body.trim()) {
      try {
        input = JSON.parse(body)
      } catch {
        return [400, { error: 'body is not JSON' }]
      }
    }
    const connector = String(input.connector || 'load-test').slice(0, 100)
    const res = await query(
      'data',
      'INSERT INTO integration.runs (connector, started_at, stats) VALUES ($1, now(), $2) RETURNING id',
      [connector, JSON.stringify({ source: 'api' })],
    )
    return [201, { id: res.rows[0].id }]
  },
}

const patterns = features({ query, readBody, sessions })

// The handler for a request: an exact route, else a pattern route with its captured ids.
function findRoute(method, pathname) {
  const exact = routes[`${method} ${pathname}`]
  if (exact) return exact
  for (const [m, pattern, handler] of patterns) {
    const match = m === method && pattern.exec(pathname)
    if (match) return (req, url) => handler(req, match.slice(1), url)
  }
  return null
}

function send(res, status, body, type = 'application/json') {
  const text = type === 'application/json' ? JSON.stringify(body) : String(body)
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
  res.end(text)
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost')
  const route = findRoute(req.method, url.pathname)
  if (!route) return send(res, 404, { error: 'not found' })
  try {
    const [status, body, type] = await route(req, url)
    send(res, status, body, type)
  } catch (err) {
    send(res, err.status || 500, { error: String(err.message || err) })
  }
})

server.keepAliveTimeout = 5000
server.listen(port, process.env.BIND_HOST || '127.0.0.1', () => {
  const dbs = targets.mode === 'split'
    ? `primary ${primary.info.target || '?'} (${primary.info.sslmode || '-'}${primary.info.pooled ? ', pooled' : ''}), data ${data.info.target || '?'}`
    : `single ${primary.info.target || '?'}`
  console.log(
    `backoffice-api listening on ${port}: mode ${targets.mode}, ${dbs}; ` +
      `env file ${envLoad.file} (${envLoad.loaded.length} variables); build ${build ? build.id : 'none'}`,
  )
  if (process.send) process.send('ready')
})

function shutdown(signal) {
  console.log(`backoffice-api: ${signal}, closing`)
  server.close(() => {
    const pools = new Set([primary.pool, data.pool].filter(Boolean))
    Promise.allSettled([...pools].map((p) => p.end())).then(() => process.exit(0))
  })
  setTimeout(() => process.exit(0), 3000).unref()
}
process.on('SIGINT', () => shutdown('SIGINT'))
process.on('SIGTERM', () => shutdown('SIGTERM'))
