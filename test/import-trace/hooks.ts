import { appendFileSync } from 'node:fs';

/** Module hook (see register.ts): every ES module loaded, one URL a line. */
export async function load(url: string, context: unknown, next: (url: string, context: unknown) => Promise<unknown>): Promise<unknown> {
  if (process.env.DFWE_IMPORT_TRACE) appendFileSync(process.env.DFWE_IMPORT_TRACE, `${url}\n`);
  return next(url, context);
}
