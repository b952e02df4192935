// Assembles src/merge/kernels.wat into dist/src/merge/kernels.wasm (part of `npm run build`):
// the text is the source, reviewed and diffed; the binary is built, never committed. A function
// named $NAME_KIND is a template, stamped once per input type with (load4 ADDRESS @) replaced by
// that type's four-element load and decoding, written out.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import initWabt from 'wabt';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src/merge/kernels.wat');
const target = join(root, 'dist/src/merge/kernels.wasm');

const at = (p, width) => `(i32.add ${p} (i32.shl (local.get $j) (i32.const ${width === 4 ? 2 : 1})))`;
const LOADS = {
  f32: (p) => `(v128.load ${at(p, 4)})`,
  bf16: (p) => `(i32x4.shl (v128.load16x4_u ${at(p, 2)}) (i32.const 16))`,
  // $half_to_f32, written out: the bits times 2^112, exponent 31 made 255, the sign put back.
  f16: (p) =>
    `(v128.or (v128.or (f32x4.mul (local.tee $o (i32x4.shl (v128.and (local.tee $h (v128.load16x4_u ${at(p, 2)})) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) (i32.const 13))) (v128.const i32x4 0x77800000 0x77800000 0x77800000 0x77800000)) (v128.and (i32x4.ge_u (local.get $o) (v128.const i32x4 0x0f800000 0x0f800000 0x0f800000 0x0f800000)) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))) (i32x4.shl (v128.and (local.get $h) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16)))`,
};

/** The WAT with each template function stamped once per kind. */
export function expandKernels(text) {
  return text.replace(/\n  \(func \$(\w+)_KIND\b[\s\S]*?(?=\n\n)/g, (fn) =>
    Object.entries(LOADS)
      .map(([kind, load]) => fn.replace(/_KIND\b/g, `_${kind}`).replace(/\(load4 (.+?) @\)/g, (_, p) => load(p)))
      .join('\n'),
  );
}

const wabt = await initWabt();
const module = wabt.parseWat(source, expandKernels(readFileSync(source, 'utf8')), { simd: true, bulk_memory: true });
module.validate();
const { buffer } = module.toBinary({});
mkdirSync(dirname(target), { recursive: true });
writeFileSync(target, buffer);
