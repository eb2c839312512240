'use strict'
// `pnpm build`: copy each app's src/ to dist/ and stamp it with a build id (dist/build.json).
// pm2 runs dist/, so a deploy that skips the build keeps running the previous one.

const crypto = require('crypto')
const fs = require('fs')
const path = require('path')

const root = path.resolve(__dirname, '..')
const id = `${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${crypto.randomBytes(3).toString('hex')}`

for (const app of ['api', 'web']) {
  const base = path.join(root, 'apps', 'backoffice', app)
  const dist = path.join(base, 'dist')
  fs.rmSync(dist, { recursive: true, force: true })
  fs.cpSync(path.join(base, 'src'), dist, { recursive: true })
  fs.writeFileSync(path.join(dist, 'build.json'), JSON.stringify({ id, builtAt: new Date().toISOString() }) + '\n')
}
console.log(`build ${id}: apps/backoffice/{api,web}/dist`)
