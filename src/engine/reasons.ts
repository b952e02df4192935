import type { FingerprintChange } from '../keys/fingerprint.js';

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
