/**
 * handleShutdownSignals: the first SIGINT/SIGTERM shuts down, its duplicate (the same signal
 * within the window: a terminal's Ctrl-C plus npm's forward of it) is ignored, a later or
 * different one hurries once, and no signal reaches Node's default action while it is installed.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { DUPLICATE_SIGNAL_WINDOW_MS, handleShutdownSignals } from '../../src/gateway/run.js';

function harness() {
  let clock = 1_000;
  const calls: string[] = [];
  const dispose = handleShutdownSignals({
    shutdown: (s) => calls.push(`shutdown ${s}`),
    hurry: (s) => calls.push(`hurry ${s}`),
    now: () => clock,
  });
  // Node emits a signal event with the signal's name as its argument
  const send = (signal: NodeJS.Signals, atMs: number): void => {
    clock = 1_000 + atMs;
    process.emit(signal, signal);
  };
  return { calls, send, dispose };
}

describe('handleShutdownSignals', () => {
  let dispose: (() => void) | undefined;
  afterEach(() => dispose?.());

  it('counts the same signal within the window once, and hurries on a later one, once', () => {
    const h = harness();
    dispose = h.dispose;
    h.send('SIGINT', 0);
    h.send('SIGINT', 5);
    h.send('SIGINT', DUPLICATE_SIGNAL_WINDOW_MS - 1);
    assert.deepEqual(h.calls, ['shutdown SIGINT']);
    h.send('SIGINT', DUPLICATE_SIGNAL_WINDOW_MS + 500);
    h.send('SIGINT', DUPLICATE_SIGNAL_WINDOW_MS + 505);
    h.send('SIGTERM', DUPLICATE_SIGNAL_WINDOW_MS + 900);
    assert.deepEqual(h.calls, ['shutdown SIGINT', 'hurry SIGINT']);
  });

  it('a different signal is no duplicate, even at once', () => {
    const h = harness();
    dispose = h.dispose;
    h.send('SIGTERM', 0);
    h.send('SIGINT', 1);
    assert.deepEqual(h.calls, ['shutdown SIGTERM', 'hurry SIGINT']);
  });

  it('holds SIGINT and SIGTERM while installed, and lets go when disposed', () => {
    const before = [process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')];
    const h = harness();
    assert.deepEqual([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')], [before[0]! + 1, before[1]! + 1]);
    h.dispose();
    assert.deepEqual([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')], before);
    dispose = undefined;
  });
});
