import { useEffect, useRef, useState } from 'preact/hooks';
import { clock, mapLink, phone } from '../format.js';
import { loadOlder, selectConversation, sendReply, setBot } from '../store.js';

const TICKS = { queued: '🕓', accepted: '🕓', sending: '🕓', sent: '✓', delivered: '✓✓', read: '✓✓', failed: '⚠', undelivered: '⚠', skipped: '⊘' };

function statusLabel(status, t) {
  const key = { queued: 'statusQueued', accepted: 'statusQueued', sending: 'statusQueued', sent: 'statusSent', delivered: 'statusDelivered', read: 'statusRead', failed: 'statusFailed', undelivered: 'statusFailed', skipped: 'statusSkipped', received: 'statusReceived' }[status];
  return key ? t(key) : status;
}

/** Only web links open from a message: never `javascript:` or `data:`. */
function webUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? parsed.href : null;
  } catch {
    return null;
  }
}

function Extras({ m, t }) {
  const p = m.payload || {};
  const parts = [];
  for (const media of (p.media || []).filter((x) => webUrl(x.url))) {
    parts.push(
      <a class="chip" href={webUrl(media.url)} target="_blank" rel="noopener noreferrer">
        📎 {t('attachment')} {media.content_type ? `(${media.content_type})` : ''}
      </a>,
    );
  }
  if (p.location) {
    const l = p.location;
    parts.push(
      <a class="chip" href={mapLink(l.latitude, l.longitude)} target="_blank" rel="noopener noreferrer" data-testid="map-link">
        📍 {l.label || l.address || t('location')} — {t('openMap')}
      </a>,
    );
  }
  if (p.button) parts.push(<span class="chip">👆 {t('tapped')}: {p.button.text || p.button.payload}</span>);
  if (p.list_reply) parts.push(<span class="chip">👆 {t('tapped')}: {p.list_reply.title || p.list_reply.id}</span>);
  if (Array.isArray(p.choices) && p.choices.length) {
    parts.push(
      <span class="choices">
        {t('optionsSent')}: {p.choices.map((c) => <span class="chip small">{c.title}</span>)}
      </span>,
    );
  }
  return parts.length ? <div class="extras">{parts}</div> : null;
}

export function Thread({ s, t, conversation: c }) {
  const thread = s.threads.get(c.id);
  const messages = thread ? [...thread.messages.values()].sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0)) : [];
  const [draft, setDraft] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState(null);
  const end = useRef(null);
  useEffect(() => end.current?.scrollIntoView({ block: 'end' }), [messages.length, c.id]);

  const send = async (e) => {
    e.preventDefault();
    const text = draft.trim();
    if (!text) return;
    setBusy(true);
    setProblem(null);
    try {
      await sendReply(c.id, text);
      setDraft('');
    } catch (err) {
      setProblem(err.message);
    } finally {
      setBusy(false);
    }
  };
  const toggleBot = async () => {
    setProblem(null);
    try {
      await setBot(c.id, !c.bot_active);
    } catch (err) {
      setProblem(err.message);
    }
  };

  return (
    <div class="thread" data-testid="thread" data-conversation-id={c.id}>
      <div class="thread-head">
        <button class="ghost back" onClick={() => selectConversation(null)}>
          {t('back')}
        </button>
        <div class="who">
          <strong>{c.customer_name || phone(c.customer)}</strong>
          <span class="number" dir="ltr">{phone(c.customer)}</span>
        </div>
      </div>
      <div class={c.bot_active ? 'bot-bar bot' : 'bot-bar human'} data-testid="bot-status" data-bot-active={String(c.bot_active)}>
        <span>{c.bot_active ? t('botActive') : t('botPaused')}</span>
        <button class="secondary" onClick={toggleBot} data-testid="bot-toggle">
          {c.bot_active ? t('takeOver') : t('handBack')}
        </button>
      </div>
      <ol class="messages" data-testid="messages">
        {thread?.next && (
          <li class="older">
            <button class="ghost" onClick={() => loadOlder(c.id)}>
              {t('loadOlder')}
            </button>
          </li>
        )}
        {messages.map((m) => (
          <li key={m.id} class={`message ${m.direction} ${m.author}`} data-testid="message" data-message-id={m.id} data-status={m.status}>
            <div class="author">{t(m.author === 'customer' ? 'customer' : m.author === 'staff' ? 'staff' : m.author === 'bot' ? 'bot' : 'system')}</div>
            {m.body && (
              <div class="body" dir="auto">
                {m.body}
              </div>
            )}
            <Extras m={m} t={t} />
            {m.limited && <div class="limited">{t('limited')}</div>}
            <div class="foot">
              <span class="time">{clock(m.created_at, s.lang)}</span>
              {m.direction === 'out' && (
                <span class={`ticks ${m.status}`} title={statusLabel(m.status, t)} data-testid="ticks">
                  {TICKS[m.status] || ''} {statusLabel(m.status, t)}
                </span>
              )}
            </div>
            {(m.status === 'failed' || m.status === 'undelivered') && (m.error_message || m.error_code) && (
              <div class="failure" data-testid="failure">
                {m.error_code ? `${m.error_code}: ` : ''}
                {m.error_message || ''}
              </div>
            )}
          </li>
        ))}
        <li ref={end} class="end" aria-hidden="true" />
      </ol>
      <form class="composer" onSubmit={send}>
        {problem && (
          <p class="problem" role="alert">
            {problem}
          </p>
        )}
        <textarea
          rows="2"
          dir="auto"
          maxLength={1600}
          placeholder={t('replyPlaceholder')}
          value={draft}
          onInput={(e) => setDraft(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) send(e);
          }}
          data-testid="reply"
        />
        <button type="submit" class="primary" disabled={busy || !draft.trim()} data-testid="send">
          {busy ? t('sending') : t('send')}
        </button>
      </form>
    </div>
  );
}
