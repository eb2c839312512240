'use strict'
// A tiny .env reader (dotenv semantics): KEY=VALUE lines, `export ` prefix, '#' comments,
// single quotes (literal) and double quotes (\n, \r, \t, \", \\ escapes).
// Variables already in the process environment win, as with dotenv and Prisma.
// The app reads the file itself at every start, so `pm2 restart` picks up a rewritten file.

const fs = require('fs')
const path = require('path')

const ENV_FILE = path.resolve(__dirname, '..', 'apps', 'backoffice', 'api', '.env')

function parseEnv(text) {
  const result = {}
  const lines = text.replace(/\r\n?/g, '\n').split('\n')
  for (const raw of lines) {
    let line = raw.trim()
    if (!line || line.startsWith('#')) continue
    if (line.startsWith('export ')) line = line.slice(7).trim()
    const eq = line.indexOf('=')
    if (eq <= 0) continue
    const key = line.slice(0, eq).trim()
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) continue
    let value = line.slice(eq + 1).trim()
    if (value.startsWith('"')) {
      const end = value.lastIndexOf('"')
      value = end > 0 ? value.slice(1, end) : value.slice(1)
      value = value.replace(/\\([nrt"\\])/g, (_, c) => ({ n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\' })[c])
    } else if (value.startsWith("'")) {
      const end = value.lastIndexOf("'")
      value = end > 0 ? value.slice(1, end) : value.slice(1)
    } else {
      const hash = value.search(/\s#/)
      if (hash >= 0) value = value.slice(0, hash).trim()
    }
    result[key] = value
  }
  return result
}

// Load ENV_FILE (or `file`) into process.env without overriding what is already set.
// Returns the keys that came from the file (names only: values are never logged).
function loadEnv(file = process.env.BACKOFFICE_ENV_FILE || ENV_FILE) {
  let text
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    if (err.code === 'ENOENT') return { file, loaded: [] }
    throw err
  }
  const parsed = parseEnv(text)
  const loaded = []
  for (const [key, value] of Object.entries(parsed)) {
    if (process.env[key] === undefined) {
      process.env[key] = value
      loaded.push(key)
    }
  }
  return { file, loaded }
}

function splitMode(env = process.env) {
  return String(env.SPLIT_DB_MODE || '').trim().toLowerCase() === 'true'
}

module.exports = { ENV_FILE, parseEnv, loadEnv, splitMode }
