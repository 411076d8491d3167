/**
 * Commits COUNT transactions through a txgate gateway, one after the other, each of two records
 * on TOPIC, and prints one JSON line per committed transaction.
 *
 *   node --import tsx send.ts http://127.0.0.1:8080 demo 10
 *
 * Environment: TXGATE_API_KEY (a bearer token, when the gateway has API keys on),
 * TXGATE_GIVE_UP_MS (per transaction, default 120000).
 * Exit status: 0 all committed, 1 a definitive refusal (4xx), 2 gave up (outcome unknown), 64 usage.
 */
import { GaveUpError, ProblemError, sendTransaction, type TxRecord } from './txgate-client.js';

async function main(args: string[]): Promise<number> {
  const [url, topic, countArg] = args;
  if (args.length !== 3 || !url || !topic || !/^\d+$/.test(countArg ?? '')) {
    console.error('usage: send.ts GATEWAY_URL TOPIC COUNT');
    return 64;
  }
  const giveUpMs = Number(process.env.TXGATE_GIVE_UP_MS ?? 120_000);
  if (!Number.isInteger(giveUpMs) || giveUpMs <= 0) {
    console.error('send.ts: TXGATE_GIVE_UP_MS must be a positive number of milliseconds');
    return 64;
  }
  const count = Number(countArg);
  for (let n = 0; n < count; n++) {
    // Both records commit together or not at all.
    const records: TxRecord[] = [0, 1].map((part) => ({ topic, key: `tx-${n}`, value: { n, part, client: 'typescript' } }));
    try {
      const c = await sendTransaction(url, records, {
        apiKey: process.env.TXGATE_API_KEY || undefined,
        giveUpMs,
        onRetry: (r) =>
          console.error(`send: transaction ${n} attempt ${r.attempt}: ${r.answer}; retrying in ${r.delayMs} ms (Retry-After ${r.retryAfterMs} ms)`),
      });
      console.log(JSON.stringify({ n, idempotencyKey: c.idempotencyKey, attempts: c.attempts, replayed: c.replayed, records: c.records }));
    } catch (err) {
      if (err instanceof ProblemError) {
        console.error(`send: transaction ${n} refused, nothing of it was written: ${err.message}\n${err.body}`);
        return 1;
      }
      if (err instanceof GaveUpError) {
        console.error(`send: transaction ${n}: ${err.message}`);
        return 2;
      }
      throw err;
    }
  }
  return 0;
}

// exitCode rather than exit(): stdout is flushed before the process ends
process.exitCode = await main(process.argv.slice(2));
