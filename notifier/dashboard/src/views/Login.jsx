import { useState } from 'preact/hooks';
import { setLang, signIn } from '../store.js';

export function Login({ s, t }) {
  const [token, setToken] = useState('');
  const submit = (e) => {
    e.preventDefault();
    signIn(token);
  };
  return (
    <div class="login">
      <form class="login-card" onSubmit={submit}>
        <div class="login-head">
          <h1>{t('appName')}</h1>
          <button type="button" class="ghost" onClick={() => setLang(s.lang === 'ar' ? 'en' : 'ar')} data-testid="language">
            {t('language')}
          </button>
        </div>
        <h2>{t('signInTitle')}</h2>
        <p>{t('signInHelp')}</p>
        {s.authMessage && (
          <p class="notice" role="alert" data-testid="auth-message">
            {t(s.authMessage)}
          </p>
        )}
        <label for="token">{t('tokenLabel')}</label>
        <textarea
          id="token"
          name="token"
          rows="4"
          autocomplete="off"
          spellcheck={false}
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          data-testid="token"
        />
        <button type="submit" class="primary" disabled={!token.trim()} data-testid="sign-in">
          {t('signIn')}
        </button>
      </form>
    </div>
  );
}
