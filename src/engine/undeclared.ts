import { existsSync, statSync } from 'node:fs';
import { CACHE_MARKER } from '../cache/store.js';
import { join } from 'node:path';
import { formatDiagnostic, UserError, type Diagnostic } from '../diagnostics.js';
import { isWithin, normalizeWorkspacePath } from '../pipeline/paths.js';
import type { Project } from '../project.js';
import { OutputIndex } from '../graph.js';
import { keyOf } from '../util/hash.js';
import { readTextFile, writeFileAtomic } from '../util/fsx.js';

/*
 * What a command names but its node does not declare. A key covers a node's deps and the
 * outputs it reads, nothing else: a data file named in a command (`python score.py dev.jsonl`)
 * that is not among them can change without the node running again. One rule for every command
 * (a stage's cmd, a search's score and score_server): each word that names a file or directory
 * of the workspace must be a dep, lie in one, or be an output of the node or of one it reads.
 * Said as located warnings; with `strict: true` in the pipeline, as errors.
 */

/** Shell words of a command, quotes removed; `--data=x.csv` gives x.csv. Words with expansions or globs are not paths dfwe can check. */
export function commandWords(text: string): string[] {
  const words: string[] = [];
  for (const raw of text.split(/[\s;|&<>()`]+/)) {
    let w = raw.replace(/^['"]+|['"]+$/g, '');
    const eq = w.indexOf('=');
    if (w.startsWith('-')) {
      if (eq < 0) continue;
      w = w.slice(eq + 1);
    }
    if (w === '' || /[$*?[\]{}~'"\\]/.test(w)) continue;
    words.push(w);
  }
  return words;
}

/** Say them on stderr; under `strict: true` they are input errors, said before anything runs. */
export function checkUndeclared(project: Project): void {
  const found = undeclaredReads(project);
  if (found.length === 0) return;
  if (project.strict) throw new UserError(found.map((d) => ({ ...d, severity: 'error' as const })));
  for (const d of found) process.stderr.write(formatDiagnostic(d) + '\n');
}

/**
 * A finding of the pipeline alone: a warning, or (`ifThere`) one only where that workspace path
 * is a file or directory. Located by its node's command (`command`, an index; the stage where
 * none), found again in the pipeline as it is now: a comment edit moves the lines, not the findings.
 */
interface Finding {
  node: string;
  command: number;
  message: string;
  hint: string;
  ifThere?: string;
}

export function undeclaredReads(project: Project): Diagnostic[] {
  return findingsOf(project)
    .filter((f) => applies(project.workspace, f))
    .map((f) => {
      const loc = project.graph.byId.get(f.node)!.loc;
      return { severity: 'warning', message: f.message, hint: f.hint, location: loc.commands[f.command] ?? loc.stage };
    });
}

/** A finding is said unless it is one only where a workspace path is a file or directory, and it is not. */
function applies(workspace: string, f: Finding): boolean {
  if (f.ifThere === undefined) return true;
  // A word is not always a path: one too long for a name (ENAMETOOLONG), under a file (ENOTDIR).
  try {
    const st = statSync(join(workspace, f.ifThere), { throwIfNoEntry: false });
    return st !== undefined && (st.isFile() || st.isDirectory());
  } catch {
    return false;
  }
}

const MEMO_FORMAT = 1;

/**
 * The findings, memoised beside the pipeline's expansion memo by what the pipeline says: they
 * follow from it alone (a `run` after a `status` of 20,002 nodes spent 0.1-0.2 s finding them
 * again), and only the existence of the paths they name is looked at each time.
 */
function findingsOf(project: Project): Finding[] {
  const adopted = adoptedFindings.get(project);
  if (adopted) return adopted;
  const { key, memoPath, cacheRel } = findingsMemo(project);
  const memo = readFindings(memoPath, key);
  if (memo && memo.every((f) => project.graph.byId.has(f.node))) return memo;
  const findings = findAll(project, cacheRel);
  const save = (): void => {
    try {
      writeFileAtomic(memoPath, JSON.stringify({ key, findings }), { durable: false });
    } catch {
      // a read-only cache: found again next time
    }
  };
  // Only into a cache that is dfwe's already: a run claims its cache after this check, and keeps them then.
  if (existsSync(join(project.store.root, CACHE_MARKER))) save();
  else unsaved.set(project, save);
  return findings;
}

/** What the findings memo of a pipeline (a project, or one not opened yet) is keyed by, and where it is. */
function findingsMemo(p: Pick<Project, 'store' | 'workspace' | 'displayPath' | 'variantKey' | 'meaningKey' | 'targets'>): { key: string; memoPath: string; cacheRel: string | undefined } {
  const cacheRel = normalizeWorkspacePath(p.store.root.startsWith(`${p.workspace}/`) ? p.store.root.slice(p.workspace.length + 1) : '');
  const key = keyOf([MEMO_FORMAT, p.meaningKey, p.workspace, p.displayPath, cacheRel ?? '', p.targets ? [...p.targets].sort() : null]);
  return { key, memoPath: join(p.store.stateDir, 'pipelines', `${p.variantKey}.undeclared.json`), cacheRel };
}

function readFindings(memoPath: string, key: string): Finding[] | undefined {
  try {
    const memo = JSON.parse(readTextFile(memoPath)) as { key?: unknown; findings?: unknown };
    if (memo.key === key && Array.isArray(memo.findings) && memo.findings.every((f: Finding) => typeof f?.node === 'string' && typeof f.command === 'number' && typeof f.message === 'string')) return memo.findings as Finding[];
  } catch {
    // not memoised yet, or of another shape: found again
  }
  return undefined;
}

/**
 * The findings memoised for a whole pipeline that says what `meaningKey` names, read before it is
 * opened, that apply now: for a run that opens only part of it (engine/part-run.ts), which must
 * also decode the nodes they name to say them, located. Undefined when none are memoised (that
 * run opens it all).
 */
export function memoisedFindings(p: Pick<Project, 'store' | 'workspace' | 'displayPath' | 'variantKey' | 'meaningKey'>): readonly Pick<Finding, 'node'>[] | undefined {
  const { key, memoPath } = findingsMemo({ ...p, targets: undefined });
  return readFindings(memoPath, key)?.filter((f) => applies(p.workspace, f));
}

/** A part of a project (see memoisedFindings) uses the findings read for it: it cannot find them. */
export function adoptFindings(project: Project, findings: readonly Pick<Finding, 'node'>[]): void {
  adoptedFindings.set(project, findings as Finding[]);
}

const adoptedFindings = new WeakMap<Project, Finding[]>();

/** Findings made before the cache was claimed (a project's first run), to keep once it is. */
const unsaved = new WeakMap<Project, () => void>();

/**
 * After a run claimed its cache: what its check found is kept, so the next run does not find it
 * again (the first run into a new cache left no memo, and its next run spent 0.08 s on 20,002 nodes).
 */
export function keepUndeclaredFindings(project: Project): void {
  unsaved.get(project)?.();
  unsaved.delete(project);
}

function findAll(project: Project, cacheRel: string | undefined): Finding[] {
  const { graph } = project;
  // Which output a path is or lies in, as the graph finds produced deps.
  const outputs = new OutputIndex();
  for (const n of graph.order) for (const [o, p] of Object.entries(n.outs)) outputs.add(p, n.id, o);
  const pipelineRel = normalizeWorkspacePath(project.displayPath);
  const out: Finding[] = [];
  // Once per stage, field and file: a sweep's thousand instances of one mistake are one warning.
  const said = new Set<string>();
  for (const node of graph.order) {
    node.commands.forEach(({ field, text }, i) => {
      for (const word of commandWords(text)) {
        const rel = normalizeWorkspacePath(word);
        const k = `${node.stage}\0${field}\0${rel}`;
        if (rel === undefined || said.has(k) || rel === pipelineRel || (cacheRel && isWithin(rel, cacheRel))) continue;
        if (node.deps.some((d) => isWithin(rel, d))) continue;
        const owner = outputs.containing(rel);
        const producer = owner?.id;
        if (producer === node.id || (producer !== undefined && graph.upstream.get(node.id)!.includes(producer))) continue;
        said.add(k);
        const f: Finding = {
          node: node.id,
          command: i,
          message: producer
            ? `stage "${node.stage}" reads "${rel}" (named in its ${field}), an output of ${producer}, without depending on it: it may run before ${producer} or miss its changes`
            : `stage "${node.stage}" reads "${rel}" (named in its ${field}) but does not declare it: a change to it will not rerun the stage`,
          hint: producer ? `read it as \${{ stages.${graph.byId.get(producer)!.stage}.outs.${owner!.out} }}, or list it under deps` : `add it to the stage's deps: [${rel}]`,
        };
        out.push(producer ? f : { ...f, ifThere: rel });
      }
    });
  }
  return out;
}
