'use strict'
// `pnpm db:migrate:primary` / `db:migrate:data` / `db:migrate`: apply prisma/<set>/migrations
// the way `prisma migrate deploy` does: under an advisory lock, each migration recorded in
// public._prisma_migrations, so a second run applies nothing.
//
// URLs (from the environment or apps/backoffice/api/.env; the environment wins):
//   primary: PRIMARY_DIRECT_URL (never the pool); in single mode DATABASE_URL if unset
//   data:    DATA_DATABASE_URL; in single mode DATABASE_URL if unset
//   all:     both sets into DATABASE_URL (single-database mode)

const crypto = require('crypto')
const fs = require('fs')
const path = require('path')
const { Client } = require('pg')
const { loadEnv, splitMode } = require('../lib/env')
const { pgConfig, ConfigError } = require('../lib/db')

const LOCK_KEY = 72707369 // Prisma's advisory lock key
const root = path.resolve(__dirname, '..')

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS public."_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum" VARCHAR(64) NOT NULL,
    "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL,
    "logs" TEXT,
    "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`

function targetFor(set) {
  const env = process.env
  const split = splitMode(env)
  if (set === 'all') return { variable: 'DATABASE_URL', url: env.DATABASE_URL }
  if (set === 'primary') {
    if (env.PRIMARY_DIRECT_URL || split) return { variable: 'PRIMARY_DIRECT_URL', url: env.PRIMARY_DIRECT_URL }
    return { variable: 'DATABASE_URL', url: env.DATABASE_URL }
  }
  if (env.DATA_DATABASE_URL || split) return { variable: 'DATA_DATABASE_URL', url: env.DATA_DATABASE_URL }
  return { variable: 'DATABASE_URL', url: env.DATABASE_URL }
}

function migrationsOf(set) {
  const sets = set === 'all' ? ['primary', 'data'] : [set]
  const list = []
  for (const s of sets) {
    const dir = path.join(root, 'prisma', s, 'migrations')
    for (const name of fs.readdirSync(dir).sort()) {
      const sql = fs.readFileSync(path.join(dir, name, 'migration.sql'), 'utf8')
      list.push({ name, sql, checksum: crypto.createHash('sha256').update(sql).digest('hex') })
    }
  }
  return list
}

async function migrate(set) {
  const target = targetFor(set)
  const { config, info } = pgConfig(target.variable, target.url, { connectTimeoutMs: 10000 })
  if (info.pooled) {
    throw new ConfigError(`${target.variable} goes through the pool (pgbouncer=true): migrations need the direct URL`)
  }
  const client = new Client({ ...config, query_timeout: 0 })
  await client.connect()
  const applied = []
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY])
    await client.query(CREATE_TABLE)
    const done = await client.query(
      'SELECT migration_name, checksum FROM public."_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL',
    )
    const known = new Map(done.rows.map((r) => [r.migration_name, r.checksum]))
    for (const m of migrationsOf(set)) {
      if (known.has(m.name)) {
        if (known.get(m.name) !== m.checksum) console.warn(`warning: migration ${m.name} was modified after it was applied`)
        continue
      }
      const id = crypto.randomUUID()
      await client.query('BEGIN')
      try {
        await client.query(
          'INSERT INTO public."_prisma_migrations" (id, checksum, migration_name, started_at) VALUES ($1, $2, $3, now())',
          [id, m.checksum, m.name],
        )
        await client.query(m.sql)
        await client.query(
          'UPDATE public."_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1',
          [id],
        )
        await client.query('COMMIT')
      } catch (err) {
        await client.query('ROLLBACK')
        throw new Error(`migration ${m.name} failed: ${err.message}`)
      }
      applied.push(m.name)
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => {})
    await client.end()
  }
  return { info, applied }
}

async function main() {
  const set = process.argv[2]
  if (!['primary', 'data', 'all'].includes(set)) {
    console.error('usage: node scripts/migrate.js primary|data|all')
    process.exit(2)
  }
  loadEnv()
  try {
    const { info, applied } = await migrate(set)
    const where = `${info.target} (${info.variable})`
    if (applied.length === 0) console.log(`${set}: no pending migrations to apply on ${where}`)
    else console.log(`${set}: applied ${applied.length} migration(s) on ${where}: ${applied.join(', ')}`)
  } catch (err) {
    console.error(`${set} migration failed: ${err.message}`)
    process.exit(1)
  }
}

main()
