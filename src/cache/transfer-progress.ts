/*
 * A progress line for a large transfer to or from the shared cache, on a terminal: the bytes so
 * far, the share, the rate, redrawn in place at most five times a second and cleared at the end.
 * Small transfers, and output that is not a terminal (a log, CI), get none.
 */

/** Below this, a transfer is over before a line would help. */
export const PROGRESS_FROM_BYTES = 64 << 20;

export interface Progress {
  (bytes: number): void;
  end(): void;
}

interface Terminal {
  isTTY?: boolean;
  write(text: string): unknown;
}

const mib = (bytes: number): string => (bytes / (1 << 20)).toFixed(0);

/** The progress of moving `total` bytes of `what`, or undefined where none is drawn. */
export function transferProgress(verb: string, what: string, total: number, out: Terminal = process.stderr, now: () => number = () => performance.now()): Progress | undefined {
  if (!out.isTTY || total < PROGRESS_FROM_BYTES) return undefined;
  const started = now();
  let drawn = -Infinity;
  const draw = (bytes: number): void => {
    const t = now();
    if (t - drawn < 200 && bytes < total) return;
    drawn = t;
    const rate = bytes / 1e6 / Math.max((t - started) / 1000, 1e-3);
    out.write(`\r\x1b[K${verb} ${what}: ${mib(bytes)} / ${mib(total)} MiB (${Math.floor((100 * bytes) / total)} %), ${rate.toFixed(0)} MB/s`);
  };
  return Object.assign(draw, { end: () => void out.write('\r\x1b[K') });
}
