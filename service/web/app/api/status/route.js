// BFF route GET /api/status: the web app's own status plus bitvaultd's readiness.
// It answers 200 even when bitvaultd is down (then api.reachable is false).

import { apiReadiness } from '../../../lib/api.js';

export const dynamic = 'force-dynamic';

export async function GET() {
  const api = await apiReadiness();
  return Response.json(
    { web: 'ok', api },
    { status: 200, headers: { 'cache-control': 'no-store' } },
  );
}
