// The documented REST API (see /api/openapi.json), with the session's token.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.reason || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error || 'http_error';
  }
}

export function createApi(token, restaurantId, onUnauthorized) {
  const base = `/api/restaurants/${encodeURIComponent(restaurantId)}`;
  async function call(method, path, body) {
    let response;
    try {
      response = await fetch(base + path, {
        method,
        headers: {
          Authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, { error: 'offline', reason: e.message });
    }
    const data = await response.json().catch(() => null);
    if (response.status === 401) onUnauthorized(data?.reason);
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
  const query = (params) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, v);
    const s = q.toString();
    return s ? `?${s}` : '';
  };
  return {
    conversations: (p = {}) => call('GET', `/conversations${query(p)}`),
    messages: (cid, p = {}) => call('GET', `/conversations/${cid}/messages${query(p)}`),
    send: (cid, message) => call('POST', `/conversations/${cid}/send`, { message }),
    setBot: (cid, active) => call('POST', `/conversations/${cid}/bot`, { active }),
    markRead: (cid) => call('POST', `/conversations/${cid}/read`),
    orders: (p = {}) => call('GET', `/orders${query(p)}`),
    order: (oid) => call('GET', `/orders/${oid}`),
    setStatus: (oid, status) => call('PATCH', `/orders/${oid}/status`, { status }),
    analytics: (p = {}) => call('GET', `/analytics${query(p)}`),
  };
}

/** The claims of a JWT, unverified (the server verifies); null if malformed. */
export function readClaims(token) {
  const parts = token.trim().split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      Array.from(atob(b64), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''),
    );
    const claims = JSON.parse(json);
    if (!claims.restaurant_id || typeof claims.exp !== 'number') return null;
    return claims;
  } catch {
    return null;
  }
}
