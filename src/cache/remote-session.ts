import { UserError } from '../diagnostics.js';
import type { ExecKey } from '../util/key-types.js';
import { GroupCommit } from './group-commit.js';
import type { NodeRecord } from './records.js';
import { RemoteCache, type RemoteTrust } from './remote-cache.js';
import { VERIFY_ON_RESTORE_BYTES } from './restore.js';
import { parseS3Url, RemoteFailure, S3Remote } from './s3-remote.js';
import type { CacheStore } from './store.js';

/*
 * How a command finds its shared cache, and a run's use of it. The remote is `--remote URL` or
 * $DFWE_REMOTE; its trust comes from $DFWE_REMOTE_KEY (sign and check records),
 * $DFWE_REMOTE_UNSIGNED=1 (read unsigned ones without a key) and `--remote-readonly` or
 * $DFWE_REMOTE_READONLY=1 (never write). A run looks a node up there when the local store misses
 * it, and uploads what it commits when it may write and holds the key (an unsigned upload would
 * be refused by every machine that holds it); a remote that fails is said once, and the run goes
 * on with the local store alone.
 */

export interface RemoteOptions {
  remote?: string;
  remoteReadonly?: boolean;
  /** A run's uploads: off with --no-push. */
  push?: boolean;
}

/** A warning about the shared cache, on stderr: what every command that uses one says its trouble with. */
export function warnUser(message: string): void {
  process.stderr.write(`dfwe: warning: ${message}\n`);
}

/** The remote these options, the environment or the pipeline (its `remote`) name, in that order; undefined when none does. */
export async function openRemote(store: CacheStore, opts: RemoteOptions, warn: (message: string) => void, pipeline?: string, showProgress = false): Promise<RemoteCache | undefined> {
  const url = opts.remote ?? process.env.DFWE_REMOTE ?? pipeline;
  if (!url) return undefined;
  const key = process.env.DFWE_REMOTE_KEY;
  const trust: RemoteTrust = { key: key ? Buffer.from(key) : undefined, unsigned: process.env.DFWE_REMOTE_UNSIGNED === '1', readOnly: opts.remoteReadonly === true || process.env.DFWE_REMOTE_READONLY === '1' };
  return new RemoteCache(store, await S3Remote.connect(parseS3Url(url)), trust, new GroupCommit(), warn, showProgress);
}

/** openRemote, for the commands that need one. */
export async function requireRemote(store: CacheStore, opts: RemoteOptions, warn: (message: string) => void, pipeline?: string, showProgress = false): Promise<RemoteCache> {
  const remote = await openRemote(store, opts, warn, pipeline, showProgress);
  if (!remote) throw new UserError({ message: 'no remote to use', hint: 'give --remote s3://BUCKET/PREFIX, set DFWE_REMOTE, or name one in the pipeline (remote: s3://…)' });
  return remote;
}

/** A run's shared cache: fetched where the local store misses, sent what the run commits. */
export class RemoteSession {
  fetched = 0;
  sent = 0;
  private failed = false;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly cache: RemoteCache,
    private readonly sending: boolean,
    private readonly warn: (message: string) => void,
  ) {}

  static async open(store: CacheStore, opts: RemoteOptions, warn: (message: string) => void, pipeline?: string): Promise<RemoteSession | undefined> {
    const cache = await openRemote(store, opts, warn, pipeline);
    return cache && new RemoteSession(cache, opts.push !== false && !cache.readOnly && cache.signs, warn);
  }

  /** The result of a key brought into the local store, checked; false when the remote has none it can serve. */
  async fetch(key: ExecKey): Promise<boolean> {
    if (this.failed) return false;
    try {
      const record = await this.cache.lookup(key);
      if (!record || !(await this.cache.get(record, VERIFY_ON_RESTORE_BYTES))) return false;
      this.fetched++;
      return true;
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  /** Uploaded beside the run, one result after another; `done()` waits for them. */
  send(record: NodeRecord): void {
    if (!this.sending || this.failed) return;
    this.queue = this.queue.then(async () => {
      if (this.failed) return;
      try {
        await this.cache.put(record);
        this.sent++;
      } catch (err) {
        this.fail(err);
      }
    });
  }

  /** Every upload ended; what the run did with the remote, for its last lines. */
  async done(): Promise<string> {
    await this.queue;
    this.cache.remote.close();
    return `shared cache ${this.cache.remote.url}: ${this.fetched} result${this.fetched === 1 ? '' : 's'} downloaded, ${this.sent} uploaded${this.sending ? '' : ' (uploads off: read-only, no signing key, or --no-push)'}`;
  }

  private fail(err: unknown): void {
    if (!(err instanceof RemoteFailure)) throw err;
    // Said once: an upload and a lookup under way when the store went both fail.
    if (this.failed) return;
    this.failed = true;
    this.warn(`the shared cache ${this.cache.remote.url}: ${err.message}; this run goes on without it`);
  }
}
