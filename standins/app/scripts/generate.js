'use strict'
// `pnpm db:generate`: stands in for `prisma generate` of the PRIMARY and DATA clients.
// Like Prisma, it writes into node_modules, so a fresh `pnpm install` needs it run again.

const crypto = require('crypto')
const fs = require('fs')
const path = require('path')

const root = path.resolve(__dirname, '..')
const out = path.join(root, 'node_modules', '.handled-generated')
const clients = ['primary', 'data']
const hash = crypto.createHash('sha256')
for (const client of clients) {
  const dir = path.join(root, 'prisma', client, 'migrations')
  for (const name of fs.readdirSync(dir).sort()) {
    hash.update(name)
    hash.update(fs.readFileSync(path.join(dir, name, 'migration.sql')))
  }
}
fs.mkdirSync(out, { recursive: true })
const manifest = { clients, schemaHash: hash.digest('hex'), generatedAt: new Date().toISOString() }
fs.writeFileSync(path.join(out, 'clients.json'), JSON.stringify(manifest, null, 2) + '\n')
console.log(`generated prisma clients: ${clients.join(', ')}`)
