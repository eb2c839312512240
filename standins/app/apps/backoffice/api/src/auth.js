'use strict'
// Log-in and sessions (fixture): passwords are scrypt hashes in config.users.password_hash,
//   scrypt$<N>$<r>$<p>$<salt, base64>$<key, base64>
// (standins/handled_data.py writes the same format with Python's hashlib.scrypt); a session
// token is `<user id>.<expiry ms>.<nonce>.<HMAC-SHA256 with AUTH_SECRET>` (base64url), sent as
// `Authorization: Bearer <token>`. Verified sessions are kept in an in-process cache (the
// user's row from PRIMARY, for SESSION_TTL_MS): its hits and misses are what /api/metrics and
// /api/health report. Permissions are never cached: each check reads config.role_permissions.

const crypto = require('crypto')

const SESSION_TTL_MS = 60 * 1000
const TOKEN_LIFETIME_MS = 8 * 3600 * 1000
const KEY_LENGTH = 64

function scrypt(password, salt, n, r, p) {
  return new Promise((resolve, reject) => {
    crypto.scrypt(password, salt, KEY_LENGTH, { N: n, r, p, maxmem: 64 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    )
  })
}

async function hashPassword(password) {
  const salt = crypto.randomBytes(16)
  const key = await scrypt(password, salt, 16384, 8, 1)
  return `scrypt$16384$8$1$${salt.toString('base64')}$${key.toString('base64')}`
}

// Whether `password` matches `stored`; any other scheme (the seeded bcrypt-shaped rows) fails.
async function checkPassword(password, stored) {
  const parts = String(stored || '').split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false
  const [n, r, p] = parts.slice(1, 4).map((x) => Number.parseInt(x, 10))
  const expected = Buffer.from(parts[5], 'base64')
  const key = await scrypt(String(password), Buffer.from(parts[4], 'base64'), n, r, p)
  return key.length === expected.length && crypto.timingSafeEqual(key, expected)
}

function secret() {
  const value = process.env.AUTH_SECRET || ''
  if (value.length < 32) throw Object.assign(new Error('sessions are disabled: AUTH_SECRET is not configured'), { status: 503 })
  return value
}

function sign(payload) {
  return crypto.createHmac('sha256', secret()).update(payload).digest('base64url')
}

function issueToken(userId) {
  const payload = `${userId}.${Date.now() + TOKEN_LIFETIME_MS}.${crypto.randomBytes(9).toString('base64url')}`
  return `${payload}.${sign(payload)}`
}

// The user id a token names, or null when its signature or expiry is wrong.
function verifyToken(token) {
  const parts = String(token || '').split('.')
  if (parts.length !== 4) return null
  const payload = parts.slice(0, 3).join('.')
  const given = Buffer.from(parts[3])
  const wanted = Buffer.from(sign(payload))
  if (given.length !== wanted.length || !crypto.timingSafeEqual(given, wanted)) return null
  if (Number(parts[1]) < Date.now()) return null
  return Number.parseInt(parts[0], 10)
}

class SessionCache {
  constructor(ttlMs = SESSION_TTL_MS) {
    this.ttlMs = ttlMs
    this.entries = new Map()
    this.hits = 0
    this.misses = 0
  }

  get(token) {
    const entry = this.entries.get(token)
    if (entry && entry.until > Date.now()) {
      this.hits += 1
      return entry.user
    }
    this.entries.delete(token)
    this.misses += 1
    return null
  }

  put(token, user) {
    const now = Date.now()
    if (this.entries.size >= 1000) for (const [t, e] of this.entries) if (e.until <= now) this.entries.delete(t)
    this.entries.set(token, { user, until: now + this.ttlMs })
  }

  forgetUser(id) {
    for (const [token, entry] of this.entries) if (String(entry.user.id) === String(id)) this.entries.delete(token)
  }

  stats() {
    return { hits: this.hits, misses: this.misses, size: this.entries.size, ttlMs: this.ttlMs }
  }
}

module.exports = { hashPassword, checkPassword, issueToken, verifyToken, SessionCache }
