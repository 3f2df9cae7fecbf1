// The committed dist/ is exactly what the sources build to: cargo embeds
// dist/, so a change to src/ without `npm run build` would ship stale code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildDashboard } from '../build.mjs';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

async function files(dir, prefix = '') {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = path.join(prefix, entry.name);
    if (entry.isDirectory()) out.push(...(await files(path.join(dir, entry.name), rel)));
    else out.push(rel);
  }
  return out.sort();
}

test('dist/ matches a fresh build of src/ (run `npm run build` after changing src/)', async () => {
  const tmp = await mkdtemp(path.join(tmpdir(), 'dashboard-'));
  try {
    await buildDashboard(tmp);
    const committed = path.join(root, 'dist');
    const built = await files(tmp);
    assert.deepEqual(await files(committed), built, 'the same files');
    for (const f of built) {
      const a = await readFile(path.join(committed, f));
      const b = await readFile(path.join(tmp, f));
      assert.ok(a.equals(b), `${f} is current`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

test('the page loads nothing inline and nothing from elsewhere', async () => {
  const html = await readFile(path.join(root, 'dist/index.html'), 'utf8');
  assert.doesNotMatch(html, /<script>|<style|\sstyle=|\son\w+=/i);
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//i);
  assert.match(html, /<script type="module" src="\/assets\/main-[A-Z0-9]{8}\.js"><\/script>/);
});
