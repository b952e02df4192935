import { parentPort, workerData } from 'node:worker_threads';
import { StageInputError } from '../stage-type.js';
import { claimItems, planMerge, type WorkerReply, type WorkerSetup } from './engine.js';
import { MergeThread, type MergeItem, type MergeJob } from './merge-thread.js';
import { mergeMethods } from './methods/index.js';

/* A merge thread: plans the same merge from its setup, then, for each phase it is sent, claims items until none is left. */

const { setup, module, counters } = workerData as WorkerSetup;
const claims = new Int32Array(counters);
const thread = new MergeThread(planMerge({ ...setup, method: mergeMethods.get(setup.method)! }), module);
parentPort!.on('message', ({ job, items }: { job: MergeJob; items: MergeItem[] }) => {
  let reply: WorkerReply;
  thread.begin(job);
  try {
    reply = { results: claimItems(claims, items, (item) => thread.run(item)) };
  } catch (err) {
    reply = { error: (err as Error).message, input: err instanceof StageInputError };
  } finally {
    thread.end();
  }
  parentPort!.postMessage(reply);
});
