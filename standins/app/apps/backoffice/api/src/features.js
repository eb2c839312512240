'use strict'
// The checklist's features (fixture), each real SQL on the database that holds its tables:
//
//   POST   /api/login                          config.users (PRIMARY): email + password -> token
//   GET    /api/me                             the session's user, permissions, cache hit or miss
//   POST   /api/users                          users.manage: create a user (PRIMARY)
//   GET    /api/users/:id                      users.manage: a user, its roles and permissions
//   PATCH  /api/users/:id                      users.manage: edit display name / active
//   DELETE /api/users/:id                      users.manage
//   POST   /api/users/:id/roles                roles.manage: {roleId} into config.user_roles
//   POST   /api/roles                          roles.manage: create a role
//   GET    /api/roles/:id                      roles.manage: a role and its permission codes
//   POST   /api/roles/:id/permissions          roles.manage: {code} into config.role_permissions
//   DELETE /api/roles/:id                      roles.manage
//   POST   /api/imports?filename=&customer=    imports.manage: a CSV body into workspace (DATA)
//   POST   /api/imports/:id/transform          imports.manage: total = qty * price, sku upper-cased
//   GET    /api/imports/:id/export             imports.manage: the transformed rows as CSV
//   DELETE /api/imports/:id                    imports.manage
//
// Authorization is read from config.role_permissions at every request (never cached).

const { hashPassword, checkPassword, issueToken, verifyToken } = require('./auth')

const PRIMARY = 'primary'
const DATA = 'data'

function fail(status, message) {
  return Object.assign(new Error(message), { status })
}

function parseJson(text) {
  if (!text.trim()) return {}
  try {
    return JSON.parse(text)
  } catch {
    throw fail(400, 'body is not JSON')
  }
}

// A small CSV reader: a header line, then rows; double quotes with "" escapes.
function parseCsv(text) {
  const rows = []
  let row = []
  let field = ''
  let quoted = false
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i]
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"'
        i += 1
      } else if (c === '"') quoted = false
      else field += c
    } else if (c === '"') quoted = true
    else if (c === ',') {
      row.push(field)
      field = ''
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i += 1
      row.push(field)
      if (row.some((f) => f !== '')) rows.push(row)
      row = []
      field = ''
    } else field += c
  }
  row.push(field)
  if (row.some((f) => f !== '')) rows.push(row)
  if (rows.length === 0) throw fail(400, 'the CSV file is empty')
  const header = rows[0].map((h) => h.trim())
  return rows.slice(1).map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] === undefined ? '' : r[i]])))
}

function csvField(value) {
  const text = value === null || value === undefined ? '' : String(value)
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

function features({ query, readBody, sessions }) {
  async function sessionUser(req) {
    const header = req.headers.authorization || ''
    const token = header.startsWith('Bearer ') ? header.slice(7) : ''
    if (!token) throw fail(401, 'not logged in')
    const cached = sessions.get(token)
    req.sessionCache = cached ? 'hit' : 'miss'
    if (cached) return cached
    const id = verifyToken(token)
    if (id === null) throw fail(401, 'invalid or expired session')
    const res = await query(PRIMARY, 'SELECT id, email, display_name FROM config.users WHERE id = $1 AND is_active', [id])
    if (res.rows.length === 0) throw fail(401, 'the session user is gone or inactive')
    sessions.put(token, res.rows[0])
    return res.rows[0]
  }

  async function permissionsOf(userId) {
    const res = await query(
      PRIMARY,
      'SELECT DISTINCT p.code FROM config.user_roles ur' +
        ' JOIN config.role_permissions rp ON rp.role_id = ur.role_id' +
        ' JOIN config.permissions p ON p.id = rp.permission_id WHERE ur.user_id = $1 ORDER BY 1',
      [userId],
    )
    return res.rows.map((r) => r.code)
  }

  // The session's user, once config.role_permissions grants it `code`.
  async function authorize(req, code) {
    const user = await sessionUser(req)
    if (!(await permissionsOf(user.id)).includes(code)) throw fail(403, `permission ${code} required`)
    return user
  }

  async function userView(id) {
    const res = await query(
      PRIMARY,
      'SELECT u.id, u.email, u.display_name AS "displayName", u.is_active AS "isActive",' +
        ' coalesce(array_agg(r.name ORDER BY r.name) FILTER (WHERE r.id IS NOT NULL), \'{}\') AS roles' +
        ' FROM config.users u LEFT JOIN config.user_roles ur ON ur.user_id = u.id' +
        ' LEFT JOIN config.roles r ON r.id = ur.role_id WHERE u.id = $1 GROUP BY u.id',
      [id],
    )
    if (res.rows.length === 0) throw fail(404, `no user ${id}`)
    return { ...res.rows[0], permissions: await permissionsOf(id) }
  }

  async function roleView(id) {
    const res = await query(PRIMARY, 'SELECT id, name, description FROM config.roles WHERE id = $1', [id])
    if (res.rows.length === 0) throw fail(404, `no role ${id}`)
    const perms = await query(
      PRIMARY,
      'SELECT p.code FROM config.role_permissions rp JOIN config.permissions p ON p.id = rp.permission_id' +
        ' WHERE rp.role_id = $1 ORDER BY 1',
      [id],
    )
    return { ...res.rows[0], permissions: perms.rows.map((r) => r.code) }
  }

  async function importOf(id) {
    const res = await query(DATA, 'SELECT id, filename, status, row_count AS "rowCount" FROM workspace.imports WHERE id = $1', [id])
    if (res.rows.length === 0) throw fail(404, `no import ${id}`)
    return res.rows[0]
  }

  return [
    ['POST', /^\/api\/login$/, async (req) => {
      const input = parseJson(await readBody(req))
      const res = await query(PRIMARY, 'SELECT id, email, password_hash FROM config.users WHERE email = $1 AND is_active', [
        String(input.email || ''),
      ])
      const user = res.rows[0]
      if (!user || !(await checkPassword(input.password || '', user.password_hash))) {
        return [401, { error: 'wrong email or password' }]
      }
      return [200, { token: issueToken(user.id), user: { id: user.id, email: user.email } }]
    }],
    ['GET', /^\/api\/me$/, async (req) => {
      const user = await sessionUser(req)
      return [200, { user, permissions: await permissionsOf(user.id), cache: req.sessionCache }]
    }],
    ['POST', /^\/api\/users$/, async (req) => {
      await authorize(req, 'users.manage')
      const input = parseJson(await readBody(req))
      if (!input.email || !input.displayName) return [400, { error: 'email and displayName are required' }]
      const hash = await hashPassword(String(input.password || require('crypto').randomBytes(24).toString('base64')))
      const res = await query(
        PRIMARY,
        'INSERT INTO config.users (email, display_name, password_hash, created_at) VALUES ($1, $2, $3, now()) RETURNING id',
        [String(input.email), String(input.displayName), hash],
      )
      return [201, await userView(res.rows[0].id)]
    }],
    ['GET', /^\/api\/users\/(\d+)$/, async (req, [id]) => {
      await authorize(req, 'users.manage')
      return [200, await userView(id)]
    }],
    ['PATCH', /^\/api\/users\/(\d+)$/, async (req, [id]) => {
      await authorize(req, 'users.manage')
      const input = parseJson(await readBody(req))
      const res = await query(
        PRIMARY,
        'UPDATE config.users SET display_name = coalesce($2, display_name), is_active = coalesce($3, is_active)' +
          ' WHERE id = $1 RETURNING id',
        [id, input.displayName === undefined ? null : String(input.displayName), typeof input.isActive === 'boolean' ? input.isActive : null],
      )
      if (res.rows.length === 0) return [404, { error: `no user ${id}` }]
      sessions.forgetUser(id)
      return [200, await userView(id)]
    }],
    ['DELETE', /^\/api\/users\/(\d+)$/, async (req, [id]) => {
      await authorize(req, 'users.manage')
      const res = await query(PRIMARY, 'DELETE FROM config.users WHERE id = $1', [id])
      sessions.forgetUser(id)
      return [res.rowCount ? 200 : 404, { deleted: res.rowCount }]
    }],
    ['POST', /^\/api\/users\/(\d+)\/roles$/, async (req, [id]) => {
      await authorize(req, 'roles.manage')
      const input = parseJson(await readBody(req))
      await query(
        PRIMARY,
        'INSERT INTO config.user_roles (user_id, role_id, granted_at) VALUES ($1, $2, now()) ON CONFLICT DO NOTHING',
        [id, input.roleId],
      )
      return [201, await userView(id)]
    }],
    ['POST', /^\/api\/roles$/, async (req) => {
      await authorize(req, 'roles.manage')
      const input = parseJson(await readBody(req))
      if (!input.name) return [400, { error: 'name is required' }]
      const res = await query(
        PRIMARY,
        'INSERT INTO config.roles (name, description, created_at) VALUES ($1, $2, now()) RETURNING id',
        [String(input.name), input.description ? String(input.description) : null],
      )
      return [201, await roleView(res.rows[0].id)]
    }],
    ['GET', /^\/api\/roles\/(\d+)$/, async (req, [id]) => {
      await authorize(req, 'roles.manage')
      return [200, await roleView(id)]
    }],
    ['POST', /^\/api\/roles\/(\d+)\/permissions$/, async (req, [id]) => {
      await authorize(req, 'roles.manage')
      const input = parseJson(await readBody(req))
      const res = await query(
        PRIMARY,
        'INSERT INTO config.role_permissions (role_id, permission_id)' +
          ' SELECT $1, id FROM config.permissions WHERE code = $2 ON CONFLICT DO NOTHING RETURNING permission_id',
        [id, String(input.code || '')],
      )
      if (res.rowCount === 0 && !(await roleView(id)).permissions.includes(input.code)) {
        return [404, { error: `no permission ${input.code}` }]
      }
      return [201, await roleView(id)]
    }],
    ['DELETE', /^\/api\/roles\/(\d+)$/, async (req, [id]) => {
      await authorize(req, 'roles.manage')
      await query(PRIMARY, 'DELETE FROM config.user_roles WHERE role_id = $1', [id])
      const res = await query(PRIMARY, 'DELETE FROM config.roles WHERE id = $1', [id])
      return [res.rowCount ? 200 : 404, { deleted: res.rowCount }]
    }],
    ['POST', /^\/api\/imports$/, async (req, _params, url) => {
      const user = await authorize(req, 'imports.manage')
      const rows = parseCsv(await readBody(req))
      const filename = String(url.searchParams.get('filename') || 'upload.csv').slice(0, 200)
      const customer = Number.parseInt(url.searchParams.get('customer') || '0', 10) || 0
      const created = await query(
        DATA,
        'INSERT INTO workspace.imports (customer_id, created_by, filename, status, row_count, created_at)' +
          " VALUES ($1, $2, $3, 'uploaded', $4, now()) RETURNING id",
        [customer, user.id, filename, rows.length],
      )
      const id = created.rows[0].id
      await query(
        DATA,
        'INSERT INTO workspace.import_rows (import_id, line_no, status, payload, created_at)' +
          " SELECT $1, r.n, 'uploaded', r.p, now() FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS r(p, n)",
        [id, JSON.stringify(rows)],
      )
      const stored = await query(DATA, 'SELECT count(*)::int AS n FROM workspace.import_rows WHERE import_id = $1', [id])
      return [201, { ...(await importOf(id)), storedRows: stored.rows[0].n }]
    }],
    ['POST', /^\/api\/imports\/(\d+)\/transform$/, async (req, [id]) => {
      await authorize(req, 'imports.manage')
      await importOf(id)
      const res = await query(
        DATA,
        "UPDATE workspace.import_rows SET status = CASE WHEN payload->>'qty' ~ '^[0-9]+$'" +
          " AND payload->>'price' ~ '^[0-9]+(\\.[0-9]+)?$' THEN 'transformed' ELSE 'error' END," +
          " payload = CASE WHEN payload->>'qty' ~ '^[0-9]+$' AND payload->>'price' ~ '^[0-9]+(\\.[0-9]+)?$'" +
          " THEN payload || jsonb_build_object('sku', upper(payload->>'sku')," +
          " 'total', round((payload->>'qty')::numeric * (payload->>'price')::numeric, 2)) ELSE payload END," +
          " error = CASE WHEN payload->>'qty' ~ '^[0-9]+$' AND payload->>'price' ~ '^[0-9]+(\\.[0-9]+)?$'" +
          " THEN NULL ELSE 'qty or price is not a number' END" +
          ' WHERE import_id = $1 RETURNING status',
        [id],
      )
      const transformed = res.rows.filter((r) => r.status === 'transformed').length
      await query(DATA, "UPDATE workspace.imports SET status = 'transformed', finished_at = now() WHERE id = $1", [id])
      return [200, { ...(await importOf(id)), transformed, errors: res.rows.length - transformed }]
    }],
    ['GET', /^\/api\/imports\/(\d+)\/export$/, async (req, [id]) => {
      await authorize(req, 'imports.manage')
      await importOf(id)
      const res = await query(
        DATA,
        "SELECT line_no, payload->>'sku' AS sku, payload->>'qty' AS qty, payload->>'price' AS price," +
          " payload->>'total' AS total, status FROM workspace.import_rows WHERE import_id = $1 ORDER BY line_no",
        [id],
      )
      const lines = ['line,sku,qty,price,total,status']
      for (const r of res.rows) lines.push([r.line_no, r.sku, r.qty, r.price, r.total, r.status].map(csvField).join(','))
      return [200, `${lines.join('\n')}\n`, 'text/csv']
    }],
    ['DELETE', /^\/api\/imports\/(\d+)$/, async (req, [id]) => {
      await authorize(req, 'imports.manage')
      const res = await query(DATA, 'DELETE FROM workspace.imports WHERE id = $1', [id])
      return [res.rowCount ? 200 : 404, { deleted: res.rowCount }]
    }],
  ]
}

module.exports = { features, parseCsv }
