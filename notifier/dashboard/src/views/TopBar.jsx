import { setLang, setTab, signOut, toggleSound } from '../store.js';

export function TopBar({ s, t }) {
  const unread = [...s.conversations.values()].reduce((n, c) => n + (c.unread_count || 0), 0);
  const fresh = s.fresh.size;
  const tabs = [
    ['conversations', t('tabConversations'), unread],
    ['orders', t('tabOrders'), fresh],
    ['analytics', t('tabAnalytics'), 0],
  ];
  return (
    <header class="topbar">
      <div class="brand">{t('appName')}</div>
      <nav class="tabs" role="tablist">
        {tabs.map(([id, label, badge]) => (
          <button
            role="tab"
            aria-selected={s.tab === id}
            class={s.tab === id ? 'tab active' : 'tab'}
            onClick={() => setTab(id)}
            data-testid={`tab-${id}`}
          >
            {label}
            {badge > 0 && <span class="badge">{badge}</span>}
          </button>
        ))}
      </nav>
      <div class="tools">
        <span class={s.online ? 'dot online' : 'dot'} aria-hidden="true" />
        <button class="ghost" onClick={toggleSound} aria-pressed={s.sound} data-testid="sound">
          {s.sound ? '🔔 ' + t('soundOn') : '🔕 ' + t('soundOff')}
        </button>
        <button class="ghost" onClick={() => setLang(s.lang === 'ar' ? 'en' : 'ar')} data-testid="language">
          {t('language')}
        </button>
        <button class="ghost" onClick={() => signOut()} data-testid="sign-out">
          {t('signOut')}
        </button>
      </div>
    </header>
  );
}
