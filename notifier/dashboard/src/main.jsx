import { render } from 'preact';
import { useEffect } from 'preact/hooks';
import './style.css';
import { direction, translate } from './i18n.js';
import { boot, useStore } from './store.js';
import { Login } from './views/Login.jsx';
import { TopBar } from './views/TopBar.jsx';
import { Alerts } from './views/Alerts.jsx';
import { Conversations } from './views/Conversations.jsx';
import { Board } from './views/Board.jsx';
import { Analytics } from './views/Analytics.jsx';

function App() {
  const s = useStore();
  const t = (key, vars) => translate(s.lang, key, vars);
  useEffect(() => {
    document.documentElement.lang = s.lang;
    document.documentElement.dir = direction(s.lang);
    document.title = `${t('appName')} — ${t('tab' + s.tab[0].toUpperCase() + s.tab.slice(1))}`;
  }, [s.lang, s.tab]);
  if (!s.auth) return <Login s={s} t={t} />;
  return (
    <div class="shell">
      <TopBar s={s} t={t} />
      {!s.online && (
        <div class="offline" role="status" aria-live="assertive" data-testid="offline">
          {s.offlineSince ? t('offlineSince', { time: s.offlineSince.toLocaleTimeString() }) : t('offline')}
        </div>
      )}
      {s.error && <div class="error-bar" role="alert">{t('error', { reason: s.error })}</div>}
      <Alerts s={s} t={t} />
      <main class="main">
        {s.tab === 'conversations' && <Conversations s={s} t={t} />}
        {s.tab === 'orders' && <Board s={s} t={t} />}
        {s.tab === 'analytics' && <Analytics s={s} t={t} />}
      </main>
    </div>
  );
}

boot();
render(<App />, document.getElementById('app'));
