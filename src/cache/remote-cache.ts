import { createHmac, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Cache } from './cache.js';
import type { GroupCommit } from './group-commit.js';
import { checkObject, hasObject, SEAL_MS } from './objects.js';
import { objectsOf, parseRecord, recordText, writeRecord, type NodeRecord } from './records.js';
import type { S3Remote } from './s3-remote.js';
import type { CacheStore } from './store.js';
import { tmpName } from '../util/fsx.js';
import { transferProgress } from './transfer-progress.js';
import { isExecKey, type Digest, type ExecKey } from '../util/key-types.js';

/*
 * A cache that machines share, on an S3-compatible store, behind the engine's Cache interface:
 * a second implementation beside the local store, which it works through (what it gets lands in
 * the local store, checked; what it puts is read from there).
 *
 * Under the remote's prefix:
 *   objects/<digest>        contents, by digest; `exec` in their metadata
 *   records/<execKey>.json  an envelope: the record's text as the local store keeps it (with its
 *                           checksum), and an HMAC-SHA256 of the key and that text
 *
 * Trust. Anyone who can write the bucket can plant a record, so a record is served only with a
 * valid MAC under the signing key, which only trusted writers (CI, the cluster) hold: a reader
 * with the key refuses an unsigned, mis-signed or moved record (the key is in what is signed),
 * and a record that passes is still checked as a local one is (its shape, its checksum, the
 * manifests of its directories). Its objects are checked byte for byte against their digests as
 * they come down, before the local store has them. A machine without the key reads unsigned
 * records only when told to (`unsigned`), for a store only trusted writers can write. A read-only
 * remote never writes, whatever the credentials allow. Objects go up before the record that names
 * them, and S3 shows an object whole or not at all, so a writer killed mid-way leaves at most
 * objects no record names.
 */

const ENVELOPE_FORMAT = 1;

export interface RemoteTrust {
  /** The signing key: records are signed with it, and read only when signed with it. */
  key?: Buffer;
  /** Without a key, read unsigned records (the store's own access control is then the only guard). */
  unsigned?: boolean;
  /** Never write (an untrusted machine: a laptop, a pull request's CI). */
  readOnly?: boolean;
}

export class RemoteCache implements Cache {
  constructor(
    readonly store: CacheStore,
    readonly remote: S3Remote,
    private readonly trust: RemoteTrust,
    private readonly commits: GroupCommit,
    /** Told of each record or object the remote has but that is not served, and why. */
    private readonly warn: (message: string) => void,
    /** Draw a progress line for large objects on stderr, where it is a terminal (push and pull). */
    private readonly showProgress = false,
  ) {}

  get readOnly(): boolean {
    return this.trust.readOnly === true;
  }

  /** It signs what it puts (this machine holds the key). */
  get signs(): boolean {
    return this.trust.key !== undefined;
  }

  /** It can tell a usable record from another: with the key, or told to take unsigned ones. */
  get checks(): boolean {
    return this.trust.key !== undefined || this.trust.unsigned === true;
  }

  async lookup(key: ExecKey): Promise<NodeRecord | undefined> {
    const bytes = await this.remote.getBytes(recordName(key));
    if (!bytes) return undefined;
    const opened = openEnvelope(bytes.toString('utf8'), key, this.trust);
    if (typeof opened === 'string') {
      this.warn(`${this.remote.url}${recordName(key)}: ${opened}; not used`);
      return undefined;
    }
    return opened;
  }

  /**
   * Every object of the record the local store lacks (or holds damaged: it is quarantined by the
   * check), downloaded and checked, then sealed into it, and the record kept there too: the next
   * lookup is local. False when one is missing or not the bytes it is named by (said through
   * `warn`); the record is then not kept.
   */
  async get(record: NodeRecord, verifyUpTo: number): Promise<boolean> {
    const { store } = this;
    const fetched: string[] = [];
    const sizes = new Map<string, number>();
    for (const o of Object.values(record.outputs)) for (const f of o.kind === 'file' ? [o] : o.files!) sizes.set(f.digest, f.size);
    for (const digest of new Set(objectsOf(record))) {
      // The record gives each object's size: one stat (hasObject's) per object already here.
      if (hasObject(store, digest) && ((sizes.get(digest) ?? statSync(store.objectPath(digest)).size) > verifyUpTo || checkObject(store, digest))) continue;
      const obj = store.objectPath(digest);
      mkdirSync(dirname(obj), { recursive: true });
      const tmp = tmpName(obj);
      const progress = this.showProgress ? transferProgress('downloading', `${record.nodeId} (${digest.slice(0, 8)})`, sizes.get(digest) ?? 0) : undefined;
      const got = await this.remote.getVerified(objectName(digest), digest, tmp, progress).finally(() => progress?.end());
      if (got.state !== 'ok') {
        this.warn(`${this.remote.url}${objectName(digest)}, named by the record of ${record.nodeId}: ${got.state === 'corrupt' ? 'its bytes are not the ones its digest names (damaged or planted)' : 'missing'}; the node is not served from the remote`);
        return false;
      }
      try {
        chmodSync(tmp, got.meta.exec === '1' ? 0o555 : 0o444);
        utimesSync(tmp, SEAL_MS / 1000, SEAL_MS / 1000);
        renameSync(tmp, obj);
      } catch (err) {
        rmSync(tmp, { force: true });
        throw err;
      }
      fetched.push(obj);
    }
    await this.commits.durable(fetched);
    writeRecord(store, record);
    await this.commits.durable([store.recordPath(record.execKey)]);
    return true;
  }

  /** Its objects the remote lacks, then its record: a no-op when read-only. */
  async put(record: NodeRecord): Promise<void> {
    if (this.trust.readOnly) return;
    for (const digest of new Set(objectsOf(record))) {
      if ((await this.remote.head(objectName(digest))) !== undefined) continue;
      const path = this.store.objectPath(digest);
      const st = statSync(path);
      const progress = this.showProgress ? transferProgress('uploading', `${record.nodeId} (${digest.slice(0, 8)})`, st.size) : undefined;
      await this.remote.putFile(objectName(digest), path, st.size, { meta: { exec: st.mode & 0o111 ? '1' : '0' }, onProgress: progress }).finally(() => progress?.end());
    }
    await this.remote.putBytes(recordName(record.execKey), Buffer.from(sealEnvelope(record, this.trust.key)));
  }

  async *records(): AsyncIterable<ExecKey> {
    for await (const name of this.remote.list('records/')) {
      const m = /^records\/([0-9a-f]{32})\.json$/.exec(name);
      if (m && isExecKey(m[1])) yield m[1];
    }
  }
}

const recordName = (key: ExecKey): string => `records/${key}.json`;
const objectName = (digest: Digest): string => `objects/${digest}`;

function mac(signingKey: Buffer, key: ExecKey, text: string): string {
  return createHmac('sha256', signingKey).update(`dfwe record ${key}\n`).update(text).digest('hex');
}

/** The envelope a record is kept in on a remote: signed when a key is given. */
export function sealEnvelope(record: NodeRecord, signingKey?: Buffer): string {
  const text = recordText(record);
  return JSON.stringify({ format: ENVELOPE_FORMAT, record: text, ...(signingKey ? { mac: mac(signingKey, record.execKey, text) } : {}) });
}

/** The record in an envelope read for `key`, or why it is not served. */
export function openEnvelope(envelope: string, key: ExecKey, trust: RemoteTrust): NodeRecord | string {
  let e: { format?: unknown; record?: unknown; mac?: unknown };
  try {
    e = JSON.parse(envelope) as typeof e;
  } catch {
    return 'not a record envelope';
  }
  if (e?.format !== ENVELOPE_FORMAT || typeof e.record !== 'string') return 'not a record envelope';
  if (trust.key) {
    if (typeof e.mac !== 'string') return 'unsigned (this machine holds the signing key, so it reads only signed records)';
    const expected = Buffer.from(mac(trust.key, key, e.record), 'hex');
    const given = Buffer.from(e.mac, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'its signature does not match (signed with another key, or changed since it was signed)';
  } else if (!trust.unsigned) return 'it cannot be checked here (no signing key on this machine)';
  return parseRecord(e.record, key) ?? 'the record in it is damaged or not for this key';
}
