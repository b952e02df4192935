/**
 * Node's timers hold a signed 32-bit count of milliseconds: a longer delay (24.8 days and more)
 * fires after 1 ms. Such a delay is longer than any run, so it arms nothing instead.
 */
export const LONGEST_TIMER_MS = 2 ** 31 - 1;

export function timeout(fn: () => void, ms: number): NodeJS.Timeout | undefined {
  return ms > LONGEST_TIMER_MS ? undefined : setTimeout(fn, ms);
}
