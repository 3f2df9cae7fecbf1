// The dashboard's state: what REST loaded, kept current by the live feed.
// Views read it through useStore(); actions call the REST API.

import { useEffect, useState } from 'preact/hooks';
import { createApi, readClaims } from './api.js';
import { connectLive } from './live.js';
import { chime } from './sound.js';

const TOKEN_KEY = 'waiter.token';
const STATUS_RANK = { queued: 0, accepted: 0, sending: 1, sent: 2, delivered: 3, read: 4 };
const FINAL_STATUSES = new Set(['failed', 'undelivered', 'skipped']);

const initial = () => ({
  auth: null,
  authMessage: null,
  lang: localStorage.getItem('waiter.lang') || (navigator.language?.startsWith('ar') ? 'ar' : 'en'),
  sound: localStorage.getItem('waiter.sound') !== 'off',
  tab: 'conversations',
  online: false,
  offlineSince: null,
  conversations: new Map(),
  previews: new Map(),
  threads: new Map(),
  selected: null,
  orders: new Map(),
  fresh: new Set(),
  alerts: [],
  error: null,
});

let state = initial();
const listeners = new Set();
let api = null;
let live = null;
let expiryTimer = null;
let alertId = 0;

function set(patch) {
  state = { ...state, ...(typeof patch === 'function' ? patch(state) : patch) };
  for (const l of listeners) l(state);
}

export function useStore() {
  const [s, setS] = useState(state);
  useEffect(() => {
    listeners.add(setS);
    setS(state);
    return () => listeners.delete(setS);
  }, []);
  return s;
}

export const getState = () => state;

// ------------------------------------------------------------------ auth

/** Reads a token from the login link's fragment (`#token=…`) or the session. */
export function boot() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const fromLink = hash.get('token');
  if (fromLink) {
    // Out of the address bar and the history at once.
    history.replaceState(null, '', location.pathname + location.search);
    signIn(fromLink);
    return;
  }
  const kept = sessionStorage.getItem(TOKEN_KEY);
  if (kept) signIn(kept);
}

export function signIn(raw) {
  const token = raw.trim();
  const claims = readClaims(token);
  if (!claims) return set({ authMessage: 'badToken' });
  if (claims.exp * 1000 <= Date.now()) return set({ authMessage: 'tokenExpired' });
  sessionStorage.setItem(TOKEN_KEY, token);
  api = createApi(token, claims.restaurant_id, () => signOut('tokenRefused'));
  set({ ...initial(), lang: state.lang, sound: state.sound, auth: { token, claims } });
  clearTimeout(expiryTimer);
  expiryTimer = setTimeout(() => signOut('tokenExpired'), Math.min(claims.exp * 1000 - Date.now(), 2 ** 31 - 1));
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  live = connectLive({
    url: `${scheme}://${location.host}/ws`,
    token,
    restaurantId: claims.restaurant_id,
    handlers: {
      onOnline: (first) => {
        set({ online: true, offlineSince: null });
        // First subscription: events from now on come live, the rest from REST.
        if (first) loadSnapshot();
      },
      onOffline: () => set((s) => ({ online: false, offlineSince: s.offlineSince || new Date() })),
      onExpired: () => signOut('tokenExpired'),
      onResync: () => loadSnapshot(),
      onRefused: (frame) => set({ error: `${frame.code}: ${frame.channel}` }),
      onEvent: apply,
    },
  });
}

export function signOut(message = null) {
  clearTimeout(expiryTimer);
  if (live) live.close();
  live = null;
  api = null;
  sessionStorage.removeItem(TOKEN_KEY);
  set({ ...initial(), lang: state.lang, sound: state.sound, authMessage: message });
}

export function setLang(lang) {
  localStorage.setItem('waiter.lang', lang);
  set({ lang });
}

export function toggleSound() {
  const sound = !state.sound;
  localStorage.setItem('waiter.sound', sound ? 'on' : 'off');
  set({ sound });
  if (sound) chime('test');
}

export const setTab = (tab) => set({ tab });

// -------------------------------------------------------------- snapshot

async function loadSnapshot() {
  try {
    const [conversations, orders] = await Promise.all([api.conversations({ limit: 100 }), api.orders({ limit: 200 })]);
    set((s) => {
      const cmap = new Map(s.conversations);
      const previews = new Map(s.previews);
      for (const c of conversations.conversations) {
        cmap.set(c.id, newer(cmap.get(c.id), c, 'last_message_at'));
        if (c.last_message && !previews.has(c.id)) previews.set(c.id, c.last_message);
      }
      const omap = new Map(s.orders);
      for (const o of orders.orders) omap.set(o.id, newer(omap.get(o.id), o, 'updated_at'));
      return { conversations: cmap, previews, orders: omap, error: null };
    });
    if (state.selected) loadThread(state.selected);
  } catch (e) {
    set({ error: e.message });
  }
}

/** The later of two versions of a row by `field` (the new one on a tie). */
function newer(old, fresh, field) {
  if (!old) return fresh;
  return (old[field] || '') > (fresh[field] || '') ? { ...fresh, ...old } : { ...old, ...fresh };
}

// ------------------------------------------------------------ live events

function apply(frame) {
  const data = frame.data || {};
  switch (frame.type) {
    case 'message.received':
    case 'message.sent':
      return upsertMessage(data);
    case 'message.status':
      return updateStatus(data);
    case 'conversation.updated':
      return set((s) => {
        const conversations = new Map(s.conversations);
        const old = conversations.get(data.id);
        conversations.set(data.id, old ? { ...old, ...data } : data);
        return { conversations };
      });
    case 'order.created':
      alertUser('order', data);
      set((s) => ({ fresh: new Set(s.fresh).add(data.id) }));
      return upsertOrder(data);
    case 'order.updated':
    case 'order.rated':
      return upsertOrder(data);
    case 'alert.low_rating':
      alertUser('low_rating', data);
      return upsertOrder(data);
    default:
      return undefined;
  }
}

function upsertMessage(m) {
  set((s) => {
    const previews = new Map(s.previews).set(m.conversation_id, {
      body: m.body,
      direction: m.direction,
      author: m.author,
      kind: m.kind,
      created_at: m.created_at,
    });
    const thread = s.threads.get(m.conversation_id);
    if (!thread) return { previews };
    const messages = new Map(thread.messages);
    const old = messages.get(m.id);
    messages.set(m.id, old ? mergeStatus({ ...old, ...m }, old) : m);
    return { previews, threads: new Map(s.threads).set(m.conversation_id, { ...thread, messages }) };
  });
  if (m.direction === 'in' && state.selected === m.conversation_id && state.tab === 'conversations') {
    markRead(m.conversation_id);
  }
}

/** A status never goes backwards (a late "delivered" does not undo "read"). */
function mergeStatus(next, old) {
  if (FINAL_STATUSES.has(old.status)) return { ...next, status: old.status, error_code: old.error_code, error_message: old.error_message };
  if ((STATUS_RANK[next.status] ?? 0) < (STATUS_RANK[old.status] ?? 0) && !FINAL_STATUSES.has(next.status)) {
    return { ...next, status: old.status };
  }
  return next;
}

function updateStatus(change) {
  set((s) => {
    const thread = s.threads.get(change.conversation_id);
    const old = thread?.messages.get(change.message_id);
    if (!old) return {};
    const messages = new Map(thread.messages);
    messages.set(
      old.id,
      mergeStatus({ ...old, status: change.status, error_code: change.error_code, error_message: change.error_message }, old),
    );
    return { threads: new Map(s.threads).set(change.conversation_id, { ...thread, messages }) };
  });
}

function upsertOrder(o) {
  set((s) => {
    const orders = new Map(s.orders);
    const old = orders.get(o.id);
    orders.set(o.id, old ? newer(old, o, 'updated_at') : o);
    return { orders };
  });
  // The event carries the order; the board also shows who, where and what
  // comes next, which the order's REST view adds.
  api?.order(o.id).then(
    (card) => set((s) => ({ orders: new Map(s.orders).set(card.id, newer(s.orders.get(card.id), card, 'updated_at')) })),
    () => {},
  );
}

function alertUser(kind, order) {
  const alert = { id: ++alertId, kind, orderId: order.id, number: order.number, rating: order.rating };
  set((s) => ({ alerts: [...s.alerts, alert] }));
  if (state.sound) chime(kind);
}

export const dismissAlert = (id) => set((s) => ({ alerts: s.alerts.filter((a) => a.id !== id) }));

export function acknowledge(orderId) {
  if (!state.fresh.has(orderId)) return;
  set((s) => {
    const fresh = new Set(s.fresh);
    fresh.delete(orderId);
    return { fresh, alerts: s.alerts.filter((a) => a.orderId !== orderId || a.kind !== 'order') };
  });
}

// --------------------------------------------------------- conversations

export async function selectConversation(cid) {
  set({ selected: cid, tab: 'conversations' });
  if (cid) {
    await loadThread(cid);
    markRead(cid);
  }
}

async function loadThread(cid) {
  try {
    const page = await api.messages(cid, { limit: 50 });
    set((s) => {
      const old = s.threads.get(cid);
      const messages = new Map();
      for (const m of page.messages) messages.set(m.id, m);
      // Anything that arrived live meanwhile, and older pages already shown.
      if (old) for (const [id, m] of old.messages) messages.set(id, messages.has(id) ? mergeStatus(messages.get(id), m) : m);
      return { threads: new Map(s.threads).set(cid, { messages, next: old?.olderLoaded ? old.next : page.next, olderLoaded: old?.olderLoaded }) };
    });
  } catch (e) {
    set({ error: e.message });
  }
}

export async function loadOlder(cid) {
  const thread = state.threads.get(cid);
  if (!thread?.next) return;
  const page = await api.messages(cid, { limit: 50, before: thread.next });
  set((s) => {
    const t = s.threads.get(cid);
    const messages = new Map();
    for (const m of page.messages) messages.set(m.id, m);
    for (const [id, m] of t.messages) messages.set(id, m);
    return { threads: new Map(s.threads).set(cid, { messages, next: page.next, olderLoaded: true }) };
  });
}

let reading = new Set();
function markRead(cid) {
  const c = state.conversations.get(cid);
  if (reading.has(cid) || (c && c.unread_count === 0)) return;
  reading.add(cid);
  api
    ?.markRead(cid)
    .then((view) => set((s) => ({ conversations: new Map(s.conversations).set(cid, { ...s.conversations.get(cid), ...view }) })))
    .catch(() => {})
    .finally(() => reading.delete(cid));
}

export const sendReply = (cid, text) => api.send(cid, text);
export const setBot = (cid, active) => api.setBot(cid, active);

// ---------------------------------------------------------------- orders

export async function moveOrder(oid, status) {
  const card = await api.setStatus(oid, status);
  set((s) => ({ orders: new Map(s.orders).set(card.id, newer(s.orders.get(card.id), card, 'updated_at')) }));
  acknowledge(oid);
  return card;
}

/** The order as the server has it now (after a refused move). */
export async function refreshOrder(oid) {
  const card = await api.order(oid).catch(() => null);
  if (card) set((s) => ({ orders: new Map(s.orders).set(card.id, newer(s.orders.get(card.id), card, 'updated_at')) }));
}

export const loadAnalytics = (params) => api.analytics(params);
