// The live feed over the documented WebSocket contract: subscribe to the
// restaurant's channels, resume with `since` (the last `seq` seen) after
// any drop, and drop any frame whose `seq` was already applied, so a
// reconnect shows nothing missing and nothing twice.
//
// Close 4001 means the token expired: no reconnect, the user signs in again.

const CLOSE_TOKEN_EXPIRED = 4001;
const PING_MS = 15000;
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];

export function channelsOf(restaurantId) {
  return ['messages', 'orders', 'conversations'].map((c) => `ws:restaurant:${restaurantId}:${c}`);
}

/**
 * handlers: onEvent(frame), onOnline(), onOffline(), onExpired(),
 * onResync() (the server cannot resume from `since`: reload from REST),
 * onRefused(frame).
 */
export function connectLive({ url, token, restaurantId, handlers }) {
  let socket = null;
  let lastSeq = null;
  let attempt = 0;
  let stopped = false;
  let retryTimer = null;
  let pingTimer = null;
  let lastFrameAt = 0;

  const open = () => {
    clearTimeout(retryTimer);
    if (stopped) return;
    let ws;
    try {
      ws = new WebSocket(url, [`bearer.${token}`]);
    } catch {
      return retry();
    }
    socket = ws;
    ws.onopen = () => {
      const subscribe = { action: 'subscribe', channels: channelsOf(restaurantId) };
      if (lastSeq !== null) subscribe.since = lastSeq;
      ws.send(JSON.stringify(subscribe));
      lastFrameAt = Date.now();
      clearInterval(pingTimer);
      pingTimer = setInterval(() => {
        if (Date.now() - lastFrameAt > PING_MS * 2.5) {
          ws.close(4000, 'no answer');
          return;
        }
        if (ws.readyState === WebSocket.OPEN) ws.send('{"action":"ping"}');
      }, PING_MS);
    };
    ws.onmessage = (message) => {
      lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.type === 'subscribed') {
        attempt = 0;
        handlers.onOnline(lastSeq === null);
        return;
      }
      if (frame.type === 'pong') return;
      if (frame.type === 'error') {
        if (frame.code === 'forbidden' || frame.code === 'bad_channel') handlers.onRefused(frame);
        else if (frame.code !== 'bad_request') {
          // e.g. `since` older than what the stream keeps: start afresh.
          lastSeq = null;
          handlers.onResync(frame);
          ws.send(JSON.stringify({ action: 'subscribe', channels: channelsOf(restaurantId) }));
        }
        return;
      }
      if (typeof frame.seq !== 'number') return;
      if (lastSeq !== null && frame.seq <= lastSeq) return;
      lastSeq = frame.seq;
      handlers.onEvent(frame);
    };
    ws.onclose = (event) => {
      clearInterval(pingTimer);
      if (socket !== ws) return;
      socket = null;
      if (stopped) return;
      if (event.code === CLOSE_TOKEN_EXPIRED) {
        stopped = true;
        handlers.onExpired();
        return;
      }
      handlers.onOffline();
      retry();
    };
  };

  const retry = () => {
    const base = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    attempt += 1;
    retryTimer = setTimeout(open, base + Math.random() * base * 0.3);
  };

  const onBrowserOnline = () => {
    if (!socket && !stopped) {
      attempt = 0;
      open();
    }
  };
  window.addEventListener('online', onBrowserOnline);
  open();

  return {
    get lastSeq() {
      return lastSeq;
    },
    close() {
      stopped = true;
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      window.removeEventListener('online', onBrowserOnline);
      if (socket) socket.close(1000, 'signed out');
      socket = null;
    },
  };
}
