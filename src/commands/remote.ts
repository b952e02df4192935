import { UserError } from '../diagnostics.js';
import { CACHE_LEASE, LeaseManager } from '../cache/lease.js';
import { leftoverStopper } from '../execute/executors/index.js';
import { readRecord } from '../cache/records.js';
import type { RemoteCache } from '../cache/remote-cache.js';
import { requireRemote, warnUser as warn, type RemoteOptions } from '../cache/remote-session.js';
import { RemoteFailure } from '../cache/s3-remote.js';
import { plan } from '../engine/planner.js';
import { open, type GlobalOptions } from './common.js';
import { listSome } from '../engine/reasons.js';

/*
 * `dfwe push` and `dfwe pull`: a pipeline's results moved to and from the shared cache
 * explicitly (a run also looks there and uploads on its own: engine/run.ts). Which remote, and
 * how far it is trusted: cache/remote-session.ts.
 */

/** A remote that cannot be reached or refuses: said, and the command fails; nothing local is lost. */
async function saying(remote: RemoteCache, work: () => Promise<number>): Promise<number> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof RemoteFailure)) throw err;
    process.stderr.write(`dfwe: the remote ${remote.remote.url}: ${err.message}\n`);
    return 1;
  } finally {
    remote.remote.close();
  }
}

export async function pushCommand(pipeline: string | undefined, opts: RemoteOptions, g: GlobalOptions): Promise<number> {
  const project = await open(pipeline, g);
  const remote = await requireRemote(project.store, opts, warn, project.remote, true);
  if (remote.readOnly) {
    remote.remote.close();
    throw new UserError({ message: `the remote ${remote.remote.url} is read-only here: nothing is pushed`, hint: 'push from a machine trusted to write it (without --remote-readonly or DFWE_REMOTE_READONLY)' });
  }
  if (!remote.signs) warn('no signing key (DFWE_REMOTE_KEY): the records pushed are unsigned, and machines that hold the key will not use them');
  return saying(remote, async () => {
    const { decisions } = plan(project, {});
    const missing: string[] = [];
    let pushed = 0;
    for (const d of decisions) {
      const record = d.state === 'cached' && d.execKey ? (d.record ?? readRecord(project.store, d.execKey)) : undefined;
      if (!record) {
        missing.push(d.id);
        continue;
      }
      await remote.put(record);
      pushed++;
    }
    process.stderr.write(`dfwe: pushed ${pushed} result${pushed === 1 ? '' : 's'} to ${remote.remote.url}${missing.length ? `; ${missing.length} not cached here (run them first): ${listSome(missing)}` : ''}\n`);
    return 0;
  });
}

export async function pullCommand(pipeline: string | undefined, opts: RemoteOptions, g: GlobalOptions): Promise<number> {
  const project = await open(pipeline, g);
  project.store.claim();
  const remote = await requireRemote(project.store, opts, warn, project.remote, true);
  // Held as a run holds it: a gc waits while what is pulled has no record yet.
  const leases = new LeaseManager(project.store.locksDir, `pull of ${project.displayPath}`, leftoverStopper(project.executors));
  const lease = await leases.acquire(CACHE_LEASE, `pull of ${project.displayPath}`, 'read', (h) => process.stderr.write(`dfwe: waiting for ${h.what} (pid ${h.pid} on ${h.host}) to finish\n`), new AbortController().signal);
  try {
    return await saying(remote, async () => {
      let pulled = 0;
      const tried = new Set<string>();
      // A node is keyed by its upstream nodes' outputs: what a pull brings lets the nodes after it
      // be keyed and looked for, in the next round.
      for (;;) {
        const { decisions } = plan(project, {});
        const wanted = decisions.filter((d) => d.state === 'run' && d.execKey !== undefined && !tried.has(d.execKey));
        let found = 0;
        for (const d of wanted) {
          tried.add(d.execKey!);
          const record = await remote.lookup(d.execKey!);
          if (record && (await remote.get(record, Infinity))) found++;
        }
        pulled += found;
        if (found === 0) {
          const left = decisions.filter((d) => d.state !== 'cached').length;
          process.stderr.write(`dfwe: pulled ${pulled} result${pulled === 1 ? '' : 's'} from ${remote.remote.url}${left ? `; ${left} node${left === 1 ? '' : 's'} will still run` : ''}\n`);
          return 0;
        }
      }
    });
  } finally {
    lease.release();
    leases.close();
  }
}
