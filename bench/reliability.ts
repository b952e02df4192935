import { adversarial } from './adversarial.js';
import { fuzzPipelines } from './fuzz-pipelines.js';
import { killLoop } from './kill-loop.js';

/**
 * The full counts of what the tests do briefly: kill -9 of the engine or a stage at seeded
 * random moments, mutated pipelines, and the adversarial faults (concurrent pipeline versions,
 * gc during runs, symlinked outputs, background children). Each kill loop's "lost", "changed"
 * and "corrupt" must be 0 and its final outputs must match; fuzzing must give no crash and no
 * unlocated error; the adversarial rounds must lose, change, touch outside and crash nothing.
 */
export async function benchReliability(kills: number, fuzzInputs: number, adversarialRounds: number): Promise<unknown> {
  const t0 = performance.now();
  const k = await killLoop(kills, 2026);
  const killSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const f = await fuzzPipelines(fuzzInputs, 'fuzz-bench');
  const fuzzSeconds = (performance.now() - t1) / 1000;
  const t2 = performance.now();
  const a = await adversarial(adversarialRounds, 2026);
  const adversarialSeconds = (performance.now() - t2) / 1000;
  return {
    kills: { ...k, seconds: Number(killSeconds.toFixed(1)) },
    fuzz: { ...f, seconds: Number(fuzzSeconds.toFixed(1)) },
    adversarial: { ...a, seconds: Number(adversarialSeconds.toFixed(1)) },
    ok: k.lost_records === 0 && k.changed_records === 0 && k.corrupt_objects === 0 && k.final_outputs_match && f.crashes === 0 && f.unlocated === 0 &&
      a.lost === 0 && a.changed === 0 && a.outside_touched === 0 && a.crashes === 0,
  };
}
