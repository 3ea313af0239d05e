// `npm run build`: a reproducible `next build`.
//
// Next.js generates keys at random on every build and bakes them into the output: the
// preview/draft-mode keys (.next/server/preview-props.json, prerender-manifest.json, ...) and
// the server actions encryption key. Random bytes make every image digest different. This
// script pins them to values derived from the build id:
//   - the server actions key through NEXT_SERVER_ACTIONS_ENCRYPTION_KEY, which Next.js honours;
//   - the preview keys by replacing, after the build, every occurrence of the generated values
//     in .next with the derived ones (Next.js offers no setting for them; it reads a cached
//     .previewinfo only outside containers).
// The pinned values are NOT secret. That is no loss: whatever Next.js generates is shipped in
// the image, so anyone who can pull it can read it. BitVault's web app therefore uses neither
// draft mode nor server actions (its BFF is plain route handlers); a change that introduces
// either must supply real keys at runtime instead.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const buildId = process.env.BITVAULT_BUILD_ID || 'bitvault-web';
const derive = (purpose, bytes) =>
  createHash('sha256').update(`bitvault-web/${buildId}/${purpose}`).digest().subarray(0, bytes);

const env = {
  ...process.env,
  NEXT_TELEMETRY_DISABLED: '1',
  NEXT_SERVER_ACTIONS_ENCRYPTION_KEY: derive('server-actions', 32).toString('base64'),
};
const next = spawnSync(process.execPath, ['node_modules/next/dist/bin/next', 'build'], { stdio: 'inherit', env });
if (next.status !== 0) process.exit(next.status ?? 1);

const generated = JSON.parse(readFileSync('.next/server/preview-props.json', 'utf8'));
const pinned = {
  previewModeId: derive('preview-id', 16).toString('hex'),
  previewModeSigningKey: derive('preview-signing', 32).toString('hex'),
  previewModeEncryptionKey: derive('preview-encryption', 32).toString('hex'),
};
const replacements = Object.keys(pinned).map((k) => [generated[k], pinned[k]]);
for (const [from] of replacements) {
  if (typeof from !== 'string' || from.length < 32) throw new Error(`unexpected preview-props.json: ${JSON.stringify(generated)}`);
}

let files = 0;
const walk = (dir) => {
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    const st = statSync(p);
    if (st.isDirectory()) {
      if (entry !== 'cache' && entry !== 'node_modules') walk(p);
      continue;
    }
    if (!/\.(json|js|html|rsc|body|meta)$/.test(entry)) continue;
    const text = readFileSync(p, 'utf8');
    let out = text;
    for (const [from, to] of replacements) out = out.split(from).join(to);
    if (out !== text) {
      writeFileSync(p, out);
      files++;
    }
  }
};
walk('.next');
console.log(`build: pinned the preview keys in ${files} file(s)`);
