import { useState } from 'preact/hooks';
import { money, phone, stars } from '../format.js';
import { acknowledge, moveOrder, refreshOrder, selectConversation } from '../store.js';

const COLUMNS = ['CONFIRMED', 'PREPARING', 'OUT_FOR_DELIVERY', 'DELIVERED', 'RATED', 'CANCELLED'];
const LOW_RATING = 3;

/** The address the bot recorded; a map link in it becomes a button-sized link. */
function Address({ text, t }) {
  const link = text.match(/https?:\/\/[^\s)]+/);
  const plain = link ? text.replace(link[0], '').replace(/\(\s*\)/, '').trim() : text;
  return (
    <div dir="auto">
      <span class="label">{t('address')}</span> {plain}{' '}
      {link && (
        <a class="chip" href={link[0]} target="_blank" rel="noopener noreferrer" onClick={(e) => e.stopPropagation()}>
          📍 {t('openMap')}
        </a>
      )}
    </div>
  );
}

function OrderCard({ o, s, t, problem, setProblem }) {
  const [arming, setArming] = useState(false);
  const [busy, setBusy] = useState(false);
  const fresh = s.fresh.has(o.id);
  const low = o.rating != null && o.rating <= LOW_RATING;
  const next = o.next_statuses || [];
  const move = async (status) => {
    if (status === 'CANCELLED' && !arming) {
      setArming(true);
      setTimeout(() => setArming(false), 4000);
      return;
    }
    setArming(false);
    setBusy(true);
    setProblem(null);
    try {
      await moveOrder(o.id, status);
    } catch (e) {
      // 409: someone else moved the order meanwhile; show why, and the order as it is now.
      if (e.status === 409) {
        setProblem(t('orderChanged', { reason: e.message }));
        refreshOrder(o.id);
      } else {
        setProblem(e.message);
      }
    } finally {
      setBusy(false);
    }
  };
  const branch = o.branch && (s.lang === 'ar' ? o.branch.name_ar : o.branch.name_en);
  return (
    <article
      class={`order ${fresh ? 'fresh' : ''} ${low ? 'low' : ''}`}
      data-testid="order"
      data-order-id={o.id}
      data-status={o.status}
      onClick={() => acknowledge(o.id)}
    >
      <header>
        <span class="number">#{o.number}</span>
        {fresh && <span class="flag new">{t('newOrder')}</span>}
        {low && (
          <span class="flag low" data-testid="low-rating">
            {t('lowRating')}
          </span>
        )}
      </header>
      <div class="fulfilment">{o.fulfilment === 'pickup' ? '🛍 ' + t('pickup') : '🛵 ' + t('delivery')}</div>
      <button class="customer link" onClick={() => o.conversation_id && selectConversation(o.conversation_id)}>
        {o.customer_name || phone(o.customer)} <span dir="ltr">{o.customer ? phone(o.customer) : ''}</span>
      </button>
      <ul class="lines">
        {(o.lines || []).map((l) => (
          <li>
            <span class="qty">{l.quantity}×</span> {l.name}
          </li>
        ))}
      </ul>
      <div class="facts">
        <div>
          <span class="label">{t('total')}</span> <strong>{money(o.total, o.currency, s.lang)}</strong> · {t(o.payment_method === 'online' ? 'online' : 'cash')}
        </div>
        {branch && (
          <div>
            <span class="label">{t('branch')}</span> {branch}
          </div>
        )}
        {o.address && <Address text={o.address} t={t} />}
        {o.rating != null && (
          <div class="rating" data-testid="rating">
            <span class="label">{t('rating')}</span> <span class="stars">{stars(o.rating)}</span>
            {o.rating_comment && <q dir="auto">{o.rating_comment}</q>}
          </div>
        )}
      </div>
      {next.length > 0 && (
        <div class="actions">
          {next.map((status) => (
            <button
              class={status === 'CANCELLED' ? (arming ? 'danger armed' : 'danger') : 'primary'}
              disabled={busy}
              onClick={(e) => {
                e.stopPropagation();
                move(status);
              }}
              data-testid={`move-${status}`}
            >
              {status === 'CANCELLED' && arming ? t('confirmCancel') : t('A_' + status)}
            </button>
          ))}
        </div>
      )}
      {problem && (
        <p class="problem" role="alert" data-testid="order-problem">
          {problem}
        </p>
      )}
    </article>
  );
}

export function Board({ s, t }) {
  const orders = [...s.orders.values()].sort((a, b) => b.number - a.number);
  // Kept here, not in the card: a refused move refreshes the order, which may
  // move its card to another column (a new component) with the reason still shown.
  const [problems, setProblems] = useState({});
  const problemOf = (id) => (text) => setProblems((p) => ({ ...p, [id]: text }));
  return (
    <div class="board" data-testid="board">
      {COLUMNS.map((status) => {
        const here = orders.filter((o) => o.status === status);
        return (
          <section class="column" data-testid={`column-${status}`} data-status={status}>
            <h2>
              {t('S_' + status)} <span class="count">{here.length}</span>
            </h2>
            {here.length === 0 && <p class="empty">{t('noOrders')}</p>}
            {here.map((o) => (
              <OrderCard key={o.id} o={o} s={s} t={t} problem={problems[o.id]} setProblem={problemOf(o.id)} />
            ))}
          </section>
        );
      })}
    </div>
  );
}
