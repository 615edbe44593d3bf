import * as os from 'node:os';

/** "SIGKILL", "KILL", "9" → 9. */
export function signalNumber(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  const upper = name.toUpperCase();
  const key = (upper.startsWith('SIG') ? upper : `SIG${upper}`) as keyof typeof os.constants.signals;
  const n = os.constants.signals[key];
  if (n === undefined) throw new Error(`unknown signal ${JSON.stringify(name)}`);
  return n;
}
