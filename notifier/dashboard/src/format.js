import { locale } from './i18n.js';

export function money(minor, currency, lang) {
  try {
    return new Intl.NumberFormat(locale(lang), { style: 'currency', currency }).format(minor / 100);
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency}`;
  }
}

export function clock(iso, lang) {
  if (!iso) return '';
  const d = new Date(iso);
  const sameDay = d.toDateString() === new Date().toDateString();
  const opts = sameDay ? { hour: '2-digit', minute: '2-digit' } : { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' };
  return new Intl.DateTimeFormat(locale(lang), opts).format(d);
}

/** `whatsapp:+966500000123` → `+966 50 000 0123`-ish: the number as dialled. */
export function phone(address) {
  return (address || '').replace(/^whatsapp:/, '');
}

export function stars(n) {
  return '★'.repeat(n) + '☆'.repeat(Math.max(0, 5 - n));
}

export function duration(seconds, t) {
  if (seconds == null) return '—';
  const s = Math.round(seconds);
  if (s < 60) return t('seconds', { n: s });
  return t('minutes', { m: Math.floor(s / 60), s: s % 60 });
}

export function mapLink(lat, lon) {
  return `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=17/${lat}/${lon}`;
}
