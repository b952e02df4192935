import { diffFingerprints, type Fingerprint, type FingerprintChange } from '../keys/fingerprint.js';
import { readAttempt } from '../cache/records.js';
import type { CacheStore } from '../cache/store.js';

/* How a plan says why a node will run: shared by the planners (plan.ts, snapshot-plan.ts). */

/** The first few changes since the node's last run, and how many more. */
export function describeChanges(changes: FingerprintChange[]): string {
  const head = changes.slice(0, 3).map((c) => `${c.what} changed`);
  return head.join('; ') + (changes.length > 3 ? `; and ${changes.length - 3} more` : '');
}

/** A list that can be thousands long, said as its first few and a count. */
export function listSome(items: readonly string[], shown = 3): string {
  return items.length <= shown + 1 ? items.join(', ') : `${items.slice(0, shown).join(', ')} and ${items.length - shown} more`;
}

export interface RunReason {
  reason: string;
  /** What changed since the node's last attempt in this workspace (when known). */
  changes?: FingerprintChange[];
}

/** Why a node with no usable result for its key will run: what changed since its last attempt here. */
export function explainRun(store: CacheStore, workspace: string, id: string, exec: Fingerprint, damaged: boolean): RunReason {
  const last = readAttempt(store, workspace, id);
  const changes = last?.fingerprint ? diffFingerprints(last.fingerprint, exec) : undefined;
  let reason: string;
  if (damaged) reason = 'cached result is damaged or incomplete (an output was modified in place or removed from the cache); will recompute';
  else if (!last) reason = 'never run';
  else if (changes && changes.length > 0) reason = describeChanges(changes);
  else if (last.status === 'failed') reason = 'last run failed';
  else reason = 'no cached result for this key';
  return { reason, changes };
}

/**
 * `d` with its reason and changes worked out when first read: each needs the node's last attempt,
 * and a status of 10,000 nodes that will run shows one line per stage (an edit of one stage's
 * command read 10,000 attempts to print one).
 */
export function withReasonWhenAsked<T extends object>(d: T, explain: () => RunReason): T & RunReason {
  let why: RunReason | undefined;
  const asked = (): RunReason => (why ??= explain());
  // A reason said otherwise (status: "cached remotely") is a plain value from then on.
  const settable = (key: keyof RunReason): PropertyDescriptor => ({
    get: () => asked()[key],
    set: (value: unknown) => Object.defineProperty(d, key, { value, writable: true, enumerable: true, configurable: true }),
    enumerable: true,
    configurable: true,
  });
  return Object.defineProperties(d, { reason: settable('reason'), changes: settable('changes') }) as T & RunReason;
}
