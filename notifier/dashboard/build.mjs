// Builds the dashboard into dist/ (committed, embedded by the notifier):
// one hashed script, one hashed stylesheet and index.html naming them.
// `node build.mjs --out DIR` builds elsewhere (the freshness test does).
import { build } from 'esbuild';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export async function buildDashboard(outDir) {
  const assets = path.join(outDir, 'assets');
  await rm(outDir, { recursive: true, force: true });
  await mkdir(assets, { recursive: true });
  const result = await build({
    absWorkingDir: here,
    entryPoints: ['src/main.jsx'],
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['es2020'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    entryNames: '[name]-[hash]',
    outdir: assets,
    legalComments: 'eof',
    metafile: true,
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => path.basename(p));
  const script = outputs.find((f) => f.endsWith('.js'));
  const style = outputs.find((f) => f.endsWith('.css'));
  if (!script || !style) throw new Error(`expected a script and a stylesheet, got ${outputs}`);
  const template = await readFile(path.join(here, 'src/index.html'), 'utf8');
  const html = template
    .replace('%SCRIPT%', `/assets/${script}`)
    .replace('%STYLE%', `/assets/${style}`);
  await writeFile(path.join(outDir, 'index.html'), html);
  return { script, style };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const out = i > 0 ? path.resolve(process.argv[i + 1]) : path.join(here, 'dist');
  const built = await buildDashboard(out);
  console.log(`built ${built.script} and ${built.style} into ${out}`);
}
