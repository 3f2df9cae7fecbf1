import { clock, phone } from '../format.js';
import { selectConversation } from '../store.js';
import { Thread } from './Thread.jsx';

function sortKey(c) {
  return c.last_message_at || '';
}

export function Conversations({ s, t }) {
  const list = [...s.conversations.values()].sort((a, b) => (sortKey(a) < sortKey(b) ? 1 : sortKey(a) > sortKey(b) ? -1 : 0));
  const selected = s.selected && s.conversations.get(s.selected);
  return (
    <div class={selected ? 'inbox has-thread' : 'inbox'}>
      <ul class="conversation-list" data-testid="conversations">
        {list.length === 0 && <li class="empty">{t('noConversations')}</li>}
        {list.map((c) => {
          const preview = s.previews.get(c.id);
          return (
            <li key={c.id}>
              <button
                class={c.id === s.selected ? 'conversation selected' : 'conversation'}
                onClick={() => selectConversation(c.id)}
                data-testid="conversation"
                data-conversation-id={c.id}
              >
                <span class="who">
                  <strong>{c.customer_name || phone(c.customer)}</strong>
                  <span class="number" dir="ltr">{phone(c.customer)}</span>
                </span>
                <span class="meta">
                  <span class="time">{clock(c.last_message_at, s.lang)}</span>
                  {c.unread_count > 0 && (
                    <span class="badge" data-testid="unread" aria-label={t('unread', { n: c.unread_count })}>
                      {c.unread_count}
                    </span>
                  )}
                </span>
                <span class="preview" dir="auto">
                  {preview ? (preview.direction === 'out' ? `${t(preview.author === 'staff' ? 'staff' : 'bot')}: ` : '') + (preview.body || t(preview.kind === 'location' ? 'location' : 'attachment')) : ''}
                </span>
                <span class={c.bot_active ? 'mode bot' : 'mode human'} data-testid="mode">
                  {c.bot_active ? t('bot') : t('staff')}
                </span>
              </button>
            </li>
          );
        })}
      </ul>
      <section class="thread-pane">
        {selected ? <Thread s={s} t={t} conversation={selected} /> : <p class="empty">{t('pickConversation')}</p>}
      </section>
    </div>
  );
}
