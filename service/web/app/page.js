// Home page: server-rendered on every request, shows whether bitvaultd is ready.

import { apiReadiness } from '../lib/api.js';

export const dynamic = 'force-dynamic';

export default async function Home() {
  const api = await apiReadiness();
  let status;
  if (!api.reachable) {
    status = 'unreachable';
  } else if (api.status === 200) {
    status = 'ready';
  } else {
    status = `not ready (HTTP ${api.status})`;
  }
  return (
    <main>
      <h1>BitVault</h1>
      <p>
        API status: <strong data-testid="api-status">{status}</strong>
      </p>
    </main>
  );
}
