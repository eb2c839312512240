'use strict'
// pm2 apps: `pm2 start ecosystem.config.js`, then `pm2 restart backoffice-api backoffice-web --update-env`.
// Both run in fork mode from the built dist/. The API reads apps/backoffice/api/.env itself at
// every start, so no database setting lives in pm2's (frozen) environment.
// Ports: BACKOFFICE_API_PORT / BACKOFFICE_WEB_PORT, else ports.json next to this file (the
// host's own settings, not in git), else 3001 / 3000.

const fs = require('fs')
const path = require('path')

function ports() {
  let file = {}
  try {
    file = JSON.parse(fs.readFileSync(path.join(__dirname, 'ports.json'), 'utf8'))
  } catch {}
  return {
    api: String(process.env.BACKOFFICE_API_PORT || file.api || 3001),
    web: String(process.env.BACKOFFICE_WEB_PORT || file.web || 3000),
  }
}

const { api, web } = ports()
const logs = path.join(__dirname, 'logs')

const common = {
  cwd: __dirname,
  exec_mode: 'fork',
  instances: 1,
  autorestart: true,
  max_restarts: 10,
  min_uptime: '5s',
  restart_delay: 500,
  kill_timeout: 5000,
  time: true,
  env: { NODE_ENV: 'production' },
}

module.exports = {
  apps: [
    {
      ...common,
      name: 'backoffice-api',
      script: 'apps/backoffice/api/dist/server.js',
      args: ['--port', api],
      out_file: path.join(logs, 'backoffice-api.out.log'),
      error_file: path.join(logs, 'backoffice-api.err.log'),
    },
    {
      ...common,
      name: 'backoffice-web',
      script: 'apps/backoffice/web/dist/server.js',
      args: ['--port', web, '--api-port', api],
      out_file: path.join(logs, 'backoffice-web.out.log'),
      error_file: path.join(logs, 'backoffice-web.err.log'),
    },
  ],
}
