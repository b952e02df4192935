import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { UserError } from '../diagnostics.js';
import { extraCa } from '../util/handed-env.js';
import { Digester } from '../util/hash.js';
import type { Digest } from '../util/key-types.js';

/*
 * Bytes on an S3-compatible store, by key under one bucket and prefix: the transport a shared cache
 * is built on. It knows nothing of records; what it guarantees is what a shared cache needs of a
 * store it does not trust:
 * - a download is checked against the digest it is asked for before the caller sees it (a
 *   corrupt or truncated object is "corrupt", never bytes);
 * - an upload is whole or absent: S3 makes a PUT and a completed multipart upload appear at once,
 *   and a multipart upload that is killed leaves only parts no GET can see;
 * - a store that cannot be reached, or refuses, is a RemoteFailure with the reason in words, told
 *   apart from an object that is not there.
 *
 * The client is the AWS SDK v3's S3 client: the reference implementation, maintained by AWS, with
 * the standard credential chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, instance roles) and multipart
 * uploads (lib-storage). It is pinned: its engines field follows Node's releases, and this
 * version still supports Node 20 (its releases after the first week of January 2027 need Node 22). Loaded only when a remote is used (it is ~25 MB of modules).
 * Against stores other than AWS (Swift, MinIO, Ceph) it is told to use path-style addresses and to
 * send checksums only where S3 requires them, which such stores do not all accept.
 */

export interface S3Location {
  bucket: string;
  /** '' or ending in '/'. */
  prefix: string;
}

/** `s3://bucket[/prefix]`; anything else is the user's mistake, said as such. */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new UserError(`a remote is s3://BUCKET or s3://BUCKET/PREFIX (a bucket name of 3-63 lowercase letters, digits, dots and hyphens), not "${url}"`);
  const prefix = (m[2] ?? '').replace(/\/+$/, '');
  if (prefix.split('/').some((p) => p === '.' || p === '..')) throw new UserError(`the remote's prefix has a "." or ".." part: "${url}"`);
  return { bucket: m[1]!, prefix: prefix ? `${prefix}/` : '' };
}

/** The store could not be reached or refused the request: the reason, for a warning. */
export class RemoteFailure extends Error {
  constructor(
    message: string,
    /** Refused (denied, bad credentials) rather than unreachable. */
    readonly refused: boolean,
  ) {
    super(message);
  }
}

/** Objects from `from` bytes go up in parts of `size`, `queue` at once (the remote bench uploads its baseline so too). */
export const UPLOAD_PARTS = { from: 64 << 20, size: 16 << 20, queue: 4 } as const;

export interface S3RemoteOptions {
  /** An S3-compatible store's address (http://host:port); else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or AWS itself. */
  endpoint?: string;
  /** Keys other than the standard chain's (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, a role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/**
 * The SDK's own agent settings (keep-alive, 50 sockets), with NODE_EXTRA_CA_CERTS's authorities
 * where the launcher handed them over (this process started without them).
 */
function httpsAgentWithCa(): { httpsAgent?: { keepAlive: boolean; maxSockets: number; ca: string[] } } {
  const ca = extraCa();
  return ca ? { httpsAgent: { keepAlive: true, maxSockets: 50, ca } } : {};
}

export class S3Remote {
  private constructor(
    readonly location: S3Location,
    private readonly client: S3Client,
    private readonly sdk: typeof import('@aws-sdk/client-s3'),
  ) {}

  static async connect(location: S3Location, opts: S3RemoteOptions = {}): Promise<S3Remote> {
    const sdk = await import('@aws-sdk/client-s3');
    const env = process.env;
    const endpoint = opts.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
    // The pin is deliberate (see above): its notice that later versions need Node 22 is not the user's to act on.
    const notice = env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
    env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    const client = new sdk.S3Client({
      region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
      ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // A store that is down is said within seconds, not after the SDK's backoff.
      maxAttempts: 2,
      requestHandler: { connectionTimeout: 5000, requestTimeout: 60_000, ...httpsAgentWithCa() },
    });
    if (notice === undefined) delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
    else env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = notice;
    return new S3Remote(location, client, sdk);
  }

  /** The URL it was opened for, for messages. */
  get url(): string {
    return `s3://${this.location.bucket}/${this.location.prefix}`;
  }

  private key(name: string): string {
    return this.location.prefix + name;
  }

  /** The size of an object, or undefined when it is not there. */
  async head(name: string): Promise<number | undefined> {
    try {
      const r = await this.client.send(new this.sdk.HeadObjectCommand({ Bucket: this.location.bucket, Key: this.key(name) }));
      return r.ContentLength ?? 0;
    } catch (err) {
      if (notFound(err)) return undefined;
      throw failure(err, `looking up ${name}`);
    }
  }

  async putBytes(name: string, bytes: Uint8Array, meta?: Record<string, string>): Promise<void> {
    try {
      await this.client.send(new this.sdk.PutObjectCommand({ Bucket: this.location.bucket, Key: this.key(name), Body: bytes, ContentLength: bytes.length, Metadata: meta }));
    } catch (err) {
      throw failure(err, `uploading ${name}`);
    }
  }

  /** A file's bytes under `name` (with `meta`, given back by getVerified): in one request, or in parts when large; whole or not at all. */
  async putFile(name: string, path: string, size: number, opts: { meta?: Record<string, string>; onProgress?: (bytes: number) => void } = {}): Promise<void> {
    const { meta, onProgress } = opts;
    try {
      if (size < UPLOAD_PARTS.from) {
        await this.client.send(new this.sdk.PutObjectCommand({ Bucket: this.location.bucket, Key: this.key(name), Body: createReadStream(path), ContentLength: size, Metadata: meta }));
        onProgress?.(size);
        return;
      }
      const { Upload } = await import('@aws-sdk/lib-storage');
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.location.bucket, Key: this.key(name), Body: createReadStream(path, { highWaterMark: 1 << 20 }), Metadata: meta },
        partSize: UPLOAD_PARTS.size,
        queueSize: UPLOAD_PARTS.queue,
        leavePartsOnError: false,
      });
      if (onProgress) upload.on('httpUploadProgress', (p) => onProgress(p.loaded ?? 0));
      await upload.done();
    } catch (err) {
      throw failure(err, `uploading ${name}`);
    }
  }

  /** An object's bytes (small ones: records), or undefined when it is not there. */
  async getBytes(name: string): Promise<Buffer | undefined> {
    try {
      const r = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(name) }));
      return Buffer.from(await r.Body!.transformToByteArray());
    } catch (err) {
      if (notFound(err)) return undefined;
      throw failure(err, `downloading ${name}`);
    }
  }

  /**
   * An object downloaded into `dest` (a temp path the caller renames when this says 'ok'), its
   * digest taken as the bytes arrive: 'corrupt' when they are not the bytes `digest` names (dest
   * is then removed), 'missing' when there is no such object. `meta`: what it was put with.
   */
  async getVerified(name: string, digest: Digest, dest: string, onProgress?: (bytes: number) => void): Promise<{ state: 'ok'; meta: Record<string, string> } | { state: 'missing' | 'corrupt' }> {
    let body: Readable;
    let meta: Record<string, string>;
    try {
      const r = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(name) }));
      body = r.Body as Readable;
      meta = r.Metadata ?? {};
    } catch (err) {
      if (notFound(err)) return { state: 'missing' };
      throw failure(err, `downloading ${name}`);
    }
    const d = new Digester();
    let bytes = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, done) {
        d.update(chunk);
        bytes += chunk.length;
        onProgress?.(bytes);
        done(null, chunk);
      },
    });
    try {
      await pipeline(body, tap, createWriteStream(dest, { flags: 'wx', mode: 0o600 }));
    } catch (err) {
      rmSync(dest, { force: true });
      // A connection cut mid-way is a truncated object: not served, and said as the store's failure.
      throw failure(err, `downloading ${name}`);
    }
    if (d.digest() === digest) return { state: 'ok', meta };
    rmSync(dest, { force: true });
    return { state: 'corrupt' };
  }

  /** The names under `under` (relative to the prefix), page by page. */
  async *list(under: string): AsyncIterable<string> {
    for await (const e of this.entries(under)) yield e.name;
  }

  /** The names under `under` with their sizes, page by page. */
  async *entries(under: string): AsyncIterable<{ name: string; size: number }> {
    let token: string | undefined;
    do {
      let r;
      try {
        r = await this.client.send(new this.sdk.ListObjectsV2Command({ Bucket: this.location.bucket, Prefix: this.key(under), ContinuationToken: token }));
      } catch (err) {
        throw failure(err, `listing ${under}`);
      }
      for (const o of r.Contents ?? []) if (o.Key) yield { name: o.Key.slice(this.location.prefix.length), size: o.Size ?? 0 };
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Uploads in parts begun under the prefix more than `olderThanMs` ago (0: whenever) and never
   * completed (a writer killed mid-way): aborted, so the store drops their parts. How many there
   * were. (Stores give the start to the second, Swift rounded up: a just-begun one can look later than now.)
   */
  async abandonUploads(olderThanMs: number): Promise<number> {
    let aborted = 0;
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    do {
      let r;
      try {
        r = await this.client.send(new this.sdk.ListMultipartUploadsCommand({ Bucket: this.location.bucket, Prefix: this.location.prefix, KeyMarker: keyMarker, UploadIdMarker: idMarker }));
      } catch (err) {
        throw failure(err, 'listing unfinished uploads');
      }
      for (const u of r.Uploads ?? []) {
        if (!u.Key || !u.UploadId || (olderThanMs > 0 && u.Initiated && Date.now() - u.Initiated.getTime() < olderThanMs)) continue;
        try {
          await this.client.send(new this.sdk.AbortMultipartUploadCommand({ Bucket: this.location.bucket, Key: u.Key, UploadId: u.UploadId }));
        } catch (err) {
          if (!notFound(err)) throw failure(err, `aborting an unfinished upload of ${u.Key}`);
        }
        aborted++;
      }
      keyMarker = r.IsTruncated ? r.NextKeyMarker : undefined;
      idMarker = r.IsTruncated ? r.NextUploadIdMarker : undefined;
    } while (keyMarker);
    return aborted;
  }

  /**
   * Each name removed (one that is not there is no error). One request per object, eight at
   * once: the batch delete needs a Content-MD5 header that this client no longer sends, and
   * S3-compatible stores (Swift's s3api) refuse it without one.
   */
  async delete(names: string[]): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < names.length) {
        const name = names[next++]!;
        try {
          await this.client.send(new this.sdk.DeleteObjectCommand({ Bucket: this.location.bucket, Key: this.key(name) }));
        } catch (err) {
          if (!notFound(err)) throw failure(err, `deleting ${name}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, names.length) }, worker));
  }

  close(): void {
    this.client.destroy();
  }
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function notFound(err: unknown): boolean {
  const name = (err as Error)?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || statusOf(err) === 404;
}

/** What went wrong, in words a user can act on. */
function failure(err: unknown, doing: string): RemoteFailure {
  if (err instanceof RemoteFailure) return err;
  const status = statusOf(err);
  const e = err as NodeJS.ErrnoException;
  if (status === 401 || status === 403) return new RemoteFailure(`${doing}: access denied (${e.name}): the credentials cannot do this here`, true);
  if (status !== undefined) return new RemoteFailure(`${doing}: the store answered ${status} (${e.name}${e.message && e.message !== e.name ? `: ${e.message}` : ''})`, status < 500);
  const code = e?.code ?? (e as { cause?: NodeJS.ErrnoException })?.cause?.code;
  return new RemoteFailure(`${doing}: the store cannot be reached (${code ?? e?.name ?? 'error'}${e?.message ? `: ${e.message}` : ''})`, false);
}
