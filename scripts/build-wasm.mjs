// Assembles src/merge/kernels.wat into dist/src/merge/kernels.wasm (part of `npm run build`):
// the text is the source, reviewed and diffed; the binary is built, never committed.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import initWabt from 'wabt';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src/merge/kernels.wat');
const target = join(root, 'dist/src/merge/kernels.wasm');
const wabt = await initWabt();
const module = wabt.parseWat(source, readFileSync(source, 'utf8'), { simd: true, bulk_memory: true });
module.validate();
const { buffer } = module.toBinary({});
mkdirSync(dirname(target), { recursive: true });
writeFileSync(target, buffer);
