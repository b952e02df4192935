/**
 * Random drops that do not depend on how a tensor is read: whether entry `index` of model `model`'s
 * task vector in tensor `name` is kept is a hash of (seed, name, model, index) compared with the
 * probability, so any chunking and any number of threads drop the same entries.
 */
function dropKey(seed: number, name: string, model: number): number {
  let h = 0x9747b28c;
  const s = `${seed}\0${name}\0${model}`;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x5bd1e995);
  return mix(h);
}

/** Each model's drop key for a tensor: the prepared state of every method that drops at random. */
export function dropKeys(t: { params: { seed: number }; name: string; k: number }): number[] {
  return Array.from({ length: t.k }, (_, i) => dropKey(t.params.seed, t.name, i));
}

/** A uniform draw in [0, 2³²) for entry `index` under `key`: kept when it is below p·2³². */
export function draw(key: number, index: number): number {
  return mix(key ^ mix((index >>> 0) ^ Math.floor(index / 4294967296)));
}

/** murmur3's 32-bit finaliser: a good mix of every input bit, as an unsigned integer. */
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
