/*
 * The three kinds of hex string dfwe keys things by. They look alike (32 hex digits) and mean
 * different things: a plan key passed where an execution key belongs looks up the wrong record
 * and finds nothing, silently. Branded, the compiler tells them apart; a value becomes one only
 * where it is computed (fingerprint.ts, util/hash.ts) or read back and checked (record-shape.ts,
 * the snapshot and history readers). It imports nothing: util/hash.ts names digests with it.
 */

declare const planKeyBrand: unique symbol;
declare const execKeyBrand: unique symbol;
declare const digestBrand: unique symbol;

/** What a node will compute, known before anything runs: its upstream nodes' plan keys are in it. */
export type PlanKey = string & { readonly [planKeyBrand]: true };

/** What a node computes from these exact inputs (its upstream outputs' digests are in it): the cache's key. */
export type ExecKey = string & { readonly [execKeyBrand]: true };

/** A content digest (xxh3, 128 bits in hex): the name of an object, or a directory's manifest. */
export type Digest = string & { readonly [digestBrand]: true };

const HEX32 = /^[0-9a-f]{32}$/;

/* A string read back from a file is taken as a key or digest only when it has the shape of one. */
export const isPlanKey = (s: unknown): s is PlanKey => typeof s === 'string' && HEX32.test(s);
export const isExecKey = (s: unknown): s is ExecKey => typeof s === 'string' && HEX32.test(s);
export const isDigest = (s: unknown): s is Digest => typeof s === 'string' && HEX32.test(s);
