import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dfweTimed, median, round } from './util.js';

/**
 * `dfwe report` of a sweep of thousands of nodes that all ran (so the timeline has a bar for each):
 * how long the report takes to write against `dfwe status` of the same pipeline (its plan, which
 * the report also makes), how big the file is, and how long headless Chromium takes to open it
 * against a page of one line. Needs /usr/bin/chromium (Debian's chromium package).
 */
const SWEEP = (members: number): string => `version: 1
sweep:
  i: \${{ range(${members}) }}
stages:
  prep: { cmd: "echo prep > \${{ outs.f }}", outs: { f: ~ } }
  work: { cmd: "cat \${{ stages.prep.outs.f }} > \${{ outs.f }} && echo \${{ i }} >> \${{ outs.f }}", outs: { f: ~ } }
  score: { cmd: "cat \${{ stages.work.outs.f }} > \${{ outs.f }}", outs: { f: ~ } }
`;

async function openTimes(files: string[]): Promise<number[]> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  try {
    const out: number[] = [];
    for (const f of files) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const t = performance.now();
      await page.goto(`file://${f}`, { waitUntil: 'load' });
      // The first frame painted: layout of every SVG element done.
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))));
      out.push(performance.now() - t);
      await page.close();
    }
    return out;
  } finally {
    await browser.close();
  }
}

export async function benchReport(members: number): Promise<unknown> {
  const ws = mkdtempSync(join(tmpdir(), 'dfwe-report-'));
  try {
    writeFileSync(join(ws, 'dfwe.yaml'), SWEEP(members));
    const run = dfweTimed(ws, ['run', '-j', '2']);
    const status = median(3, () => dfweTimed(ws, ['status']).ms);
    const report = median(3, () => dfweTimed(ws, ['report', '-o', join(ws, 'report.html')]).ms);
    const bytes = statSync(join(ws, 'report.html')).size;
    const result: Record<string, unknown> = {
      nodes: 2 * members + 1, run_s: round(run.ms / 1000), status_ms: round(status), report_ms: round(report), report_vs_status: round(report / status), report_bytes: bytes,
    };
    if (existsSync('/usr/bin/chromium')) {
      writeFileSync(join(ws, 'blank.html'), '<!doctype html><title>blank</title><p>blank</p>');
      const blank: number[] = [];
      const page: number[] = [];
      for (let i = 0; i < 3; i++) {
        const [b, p] = await openTimes([join(ws, 'blank.html'), join(ws, 'report.html')]);
        blank.push(b!);
        page.push(p!);
      }
      const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[1]!;
      Object.assign(result, { browser_open_ms: round(med(page)), blank_page_open_ms: round(med(blank)), open_vs_blank: round(med(page) / med(blank)) });
    } else result.browser = 'skipped: no /usr/bin/chromium';
    process.stderr.write(`report: ${JSON.stringify(result)}\n`);
    return result;
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
}
