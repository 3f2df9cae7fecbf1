import { dismissAlert, setTab } from '../store.js';
import { stars } from '../format.js';

export function Alerts({ s, t }) {
  if (!s.alerts.length) return null;
  return (
    <div class="alerts" aria-live="assertive">
      {s.alerts.slice(-4).map((a) => (
        <div class={`alert alert-${a.kind}`} role="alert" data-testid={`alert-${a.kind}`}>
          <button class="alert-body" onClick={() => setTab('orders')}>
            {a.kind === 'order'
              ? t('newOrderAlert', { n: a.number })
              : t('lowRatingAlert', { n: a.number, stars: stars(a.rating || 0) })}
          </button>
          <button class="ghost" onClick={() => dismissAlert(a.id)} aria-label={t('dismiss')}>
            ✕
          </button>
        </div>
      ))}
    </div>
  );
}
