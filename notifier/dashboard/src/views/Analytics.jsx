import { useEffect, useRef, useState } from 'preact/hooks';
import { BarController, BarElement, CategoryScale, Chart, LinearScale, Tooltip } from 'chart.js';
import { duration, stars } from '../format.js';
import { locale } from '../i18n.js';
import { loadAnalytics } from '../store.js';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip);

const DAY = 86400000;

function BarChart({ labels, values, horizontal, color, label, rtl }) {
  const canvas = useRef(null);
  useEffect(() => {
    const chart = new Chart(canvas.current, {
      type: 'bar',
      data: { labels, datasets: [{ label, data: values, backgroundColor: color, borderRadius: 4, maxBarThickness: 56 }] },
      options: {
        indexAxis: horizontal ? 'y' : 'x',
        animation: false,
        maintainAspectRatio: false,
        plugins: { tooltip: { rtl }, legend: { display: false } },
        scales: {
          x: { reverse: rtl && !horizontal, ticks: { precision: 0, font: { size: 14 } }, beginAtZero: true, position: 'bottom' },
          y: { beginAtZero: true, position: rtl ? 'right' : 'left', ticks: { precision: 0, font: { size: 14 } } },
        },
      },
    });
    return () => chart.destroy();
  }, [JSON.stringify([labels, values, rtl])]);
  return (
    <div class="chart">
      <canvas ref={canvas} role="img" aria-label={label} />
    </div>
  );
}

const isoDay = (d) => d.toISOString().slice(0, 10);

/** Every local day of [from, to), with the days that had no orders at 0. */
function everyDay(perDay, from, to) {
  const counts = new Map(perDay.map((d) => [d.day, d.orders]));
  const days = [];
  const day = new Date(from);
  day.setHours(12, 0, 0, 0);
  for (let i = 0; day < new Date(to) && i < 400; i++) {
    const key = `${day.getFullYear()}-${String(day.getMonth() + 1).padStart(2, '0')}-${String(day.getDate()).padStart(2, '0')}`;
    days.push({ day: key, orders: counts.get(key) || 0 });
    day.setDate(day.getDate() + 1);
  }
  return days.length ? days : perDay;
}

export function Analytics({ s, t }) {
  const [range, setRange] = useState('days7');
  const [custom, setCustom] = useState({ from: isoDay(new Date(Date.now() - 7 * DAY)), to: isoDay(new Date()) });
  const [report, setReport] = useState(null);
  const [problem, setProblem] = useState(null);
  const rtl = s.lang === 'ar';

  const params = () => {
    const now = new Date();
    const startOfToday = new Date(now.getFullYear(), now.getMonth(), now.getDate());
    if (range === 'today') return { from: startOfToday.toISOString(), to: now.toISOString() };
    if (range === 'days7') return { from: new Date(startOfToday - 6 * DAY).toISOString(), to: now.toISOString() };
    if (range === 'days30') return { from: new Date(startOfToday - 29 * DAY).toISOString(), to: now.toISOString() };
    const from = new Date(`${custom.from}T00:00:00`);
    const to = new Date(new Date(`${custom.to}T00:00:00`).getTime() + DAY);
    return { from: from.toISOString(), to: to.toISOString() };
  };
  const load = () => {
    setProblem(null);
    const range = params();
    loadAnalytics({ ...range, utc_offset: -new Date().getTimezoneOffset() }).then(
      (r) => setReport({ ...r, days: everyDay(r.orders.per_day, range.from, range.to) }),
      (e) => setProblem(e.message),
    );
  };
  useEffect(load, [range]);

  const fmtDay = (day) => new Intl.DateTimeFormat(locale(s.lang), { day: 'numeric', month: 'short' }).format(new Date(`${day}T12:00:00`));
  return (
    <div class="analytics" data-testid="analytics">
      <div class="range" role="group" aria-label={t('range')}>
        {['today', 'days7', 'days30', 'custom'].map((r) => (
          <button class={range === r ? 'secondary active' : 'secondary'} onClick={() => setRange(r)} aria-pressed={range === r}>
            {r === 'custom' ? `${t('from')}…${t('to')}` : t(r)}
          </button>
        ))}
        {range === 'custom' && (
          <span class="custom">
            <label>
              {t('from')} <input type="date" value={custom.from} onInput={(e) => setCustom({ ...custom, from: e.currentTarget.value })} />
            </label>
            <label>
              {t('to')} <input type="date" value={custom.to} onInput={(e) => setCustom({ ...custom, to: e.currentTarget.value })} />
            </label>
            <button class="primary" onClick={load}>
              {t('apply')}
            </button>
          </span>
        )}
      </div>
      {problem && <p class="problem" role="alert">{problem}</p>}
      {!report && !problem && <p>{t('loading')}</p>}
      {report && (
        <div class="figures">
          <div class="kpis">
            <div class="kpi" data-testid="kpi-orders">
              <span class="label">{t('ordersTotal')}</span>
              <strong>{report.orders.total}</strong>
            </div>
            <div class="kpi" data-testid="kpi-average">
              <span class="label">{t('average')}</span>
              <strong>{report.ratings.average == null ? '—' : report.ratings.average.toFixed(2)}</strong>
              {report.ratings.average != null && <span class="stars">{stars(Math.round(report.ratings.average))}</span>}
            </div>
            <div class="kpi" data-testid="kpi-response">
              <span class="label">{t('firstResponse')}</span>
              <strong>{duration(report.median_first_response_seconds, t)}</strong>
            </div>
          </div>
          <div class="charts">
            <section class="card">
              <h2>{t('ordersPerDay')}</h2>
              {report.orders.total ? (
                <BarChart labels={report.days.map((d) => fmtDay(d.day))} values={report.days.map((d) => d.orders)} color="#2563eb" label={t('ordersPerDay')} rtl={rtl} />
              ) : (
                <p class="empty">{t('nothingYet')}</p>
              )}
            </section>
            <section class="card">
              <h2>{t('ratings')}</h2>
              <BarChart labels={['1★', '2★', '3★', '4★', '5★']} values={[1, 2, 3, 4, 5].map((n) => report.ratings[String(n)])} color={['#dc2626', '#ea580c', '#ca8a04', '#65a30d', '#16a34a']} label={t('ratings')} rtl={rtl} />
            </section>
            <section class="card">
              <h2>{t('topItems')}</h2>
              {report.top_items.length ? (
                <BarChart labels={report.top_items.map((i) => i.name)} values={report.top_items.map((i) => i.quantity)} horizontal color="#7c3aed" label={t('topItems')} rtl={rtl} />
              ) : (
                <p class="empty">{t('nothingYet')}</p>
              )}
            </section>
          </div>
        </div>
      )}
    </div>
  );
}
