import { UserError } from '../diagnostics.js';
import { GroupCommit } from '../cache/group-commit.js';
import { CACHE_LEASE, LeaseManager } from '../cache/lease.js';
import { readRecord } from '../cache/records.js';
import { RemoteCache } from '../cache/remote-cache.js';
import { parseS3Url, RemoteFailure, S3Remote } from '../cache/s3-remote.js';
import type { CacheStore } from '../cache/store.js';
import { plan } from '../engine/planner.js';
import { open, type GlobalOptions } from './common.js';
import { listSome } from '../engine/reasons.js';

/*
 * `dfwe push` and `dfwe pull`: a pipeline's results moved to and from a shared cache explicitly.
 * The remote is `--remote s3://BUCKET/PREFIX` or $DFWE_REMOTE; the signing key $DFWE_REMOTE_KEY
 * (records are signed with it and read only when signed with it); $DFWE_REMOTE_UNSIGNED=1 reads
 * unsigned records on a machine without the key; `--remote-readonly` or $DFWE_REMOTE_READONLY=1
 * never writes. Credentials and an S3-compatible store's address come from the standard AWS
 * variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION).
 */

export interface RemoteOptions {
  remote?: string;
  remoteReadonly?: boolean;
}

const warn = (message: string): void => {
  process.stderr.write(`dfwe: warning: ${message}\n`);
};

async function openRemote(store: CacheStore, opts: RemoteOptions): Promise<RemoteCache> {
  const url = opts.remote ?? process.env.DFWE_REMOTE;
  if (!url) throw new UserError({ message: 'no remote to use', hint: 'give --remote s3://BUCKET/PREFIX, or set DFWE_REMOTE' });
  const key = process.env.DFWE_REMOTE_KEY;
  const trust = { key: key ? Buffer.from(key) : undefined, unsigned: process.env.DFWE_REMOTE_UNSIGNED === '1', readOnly: opts.remoteReadonly === true || process.env.DFWE_REMOTE_READONLY === '1' };
  return new RemoteCache(store, await S3Remote.connect(parseS3Url(url)), trust, new GroupCommit(), warn);
}

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
  const remote = await openRemote(project.store, opts);
  if (remote.readOnly) {
    remote.remote.close();
    throw new UserError({ message: `the remote ${remote.remote.url} is read-only here: nothing is pushed`, hint: 'push from a machine trusted to write it (without --remote-readonly or DFWE_REMOTE_READONLY)' });
  }
  if (!process.env.DFWE_REMOTE_KEY) warn('no signing key (DFWE_REMOTE_KEY): the records pushed are unsigned, and machines that hold the key will not use them');
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
  const remote = await openRemote(project.store, opts);
  // Held as a run holds it: a gc waits while what is pulled has no record yet.
  const leases = new LeaseManager(project.store.locksDir, `pull of ${project.displayPath}`, () => {});
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
