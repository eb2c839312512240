'use strict'
// The back-office web front (fixture): serves a page and proxies /api/* to the API, as the
// real site does for https://ops.example.com/api/health.

const fs = require('fs')
const http = require('http')
const path = require('path')

function argValue(name) {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

const port = Number.parseInt(argValue('--port') || process.env.PORT || '3000', 10)
const apiPort = Number.parseInt(argValue('--api-port') || process.env.API_PORT || '3001', 10)
let build = null
try {
  build = JSON.parse(fs.readFileSync(path.join(__dirname, 'build.json'), 'utf8'))
} catch {}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Handled back office</title></head>
<body><h1>Handled back office</h1><p>build ${build ? build.id : 'none'}</p></body></html>
`

function proxy(req, res) {
  const upstream = http.request(
    { host: '127.0.0.1', port: apiPort, method: req.method, path: req.url, headers: req.headers, timeout: 10000 },
    (up) => {
      res.writeHead(up.statusCode || 502, up.headers)
      up.pipe(res)
    },
  )
  upstream.on('timeout', () => upstream.destroy(new Error('upstream timeout')))
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: 'api unavailable' }))
  })
  req.pipe(upstream)
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/api/')) return proxy(req, res)
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' })
    return res.end(JSON.stringify({ status: 'ok', build: build ? build.id : null }))
  }
  if (req.method === 'GET' && (req.url === '/' || req.url.startsWith('/?'))) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    return res.end(PAGE)
  }
  res.writeHead(404, { 'content-type': 'text/plain' })
  res.end('not found\n')
})

server.listen(port, process.env.BIND_HOST || '127.0.0.1', () => {
  console.log(`backoffice-web listening on ${port}, api on ${apiPort}; build ${build ? build.id : 'none'}`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
process.on('SIGINT', () => server.close(() => process.exit(0)))
