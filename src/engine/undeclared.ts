import { statSync } from 'node:fs';
import { join } from 'node:path';
import { formatDiagnostic, UserError, type Diagnostic } from '../diagnostics.js';
import { isWithin, normalizeWorkspacePath } from '../pipeline/paths.js';
import type { Project } from '../project.js';
import { OutputIndex } from '../graph.js';

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

export function undeclaredReads(project: Project): Diagnostic[] {
  const { graph, workspace } = project;
  // Which output a path is or lies in, as the graph finds produced deps.
  const outputs = new OutputIndex();
  for (const n of graph.order) for (const [o, p] of Object.entries(n.outs)) outputs.add(p, n.id, o);
  const exists = new Map<string, boolean>();
  const isThere = (rel: string): boolean => {
    let e = exists.get(rel);
    if (e === undefined) {
      // A word is not always a path: one too long for a name (ENAMETOOLONG), under a file (ENOTDIR).
      let st;
      try {
        st = statSync(join(workspace, rel), { throwIfNoEntry: false });
      } catch {
        st = undefined;
      }
      e = st !== undefined && (st.isFile() || st.isDirectory());
      exists.set(rel, e);
    }
    return e;
  };
  const pipelineRel = normalizeWorkspacePath(project.displayPath);
  const cacheRel = normalizeWorkspacePath(project.store.root.startsWith(`${workspace}/`) ? project.store.root.slice(workspace.length + 1) : '');
  const out: Diagnostic[] = [];
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
        if (producer === undefined && !isThere(rel)) continue;
        said.add(k);
        out.push({
          severity: 'warning',
          message: producer
            ? `stage "${node.stage}" reads "${rel}" (named in its ${field}), an output of ${producer}, without depending on it: it may run before ${producer} or miss its changes`
            : `stage "${node.stage}" reads "${rel}" (named in its ${field}) but does not declare it: a change to it will not rerun the stage`,
          location: node.loc.commands[i] ?? node.loc.stage,
          hint: producer ? `read it as \${{ stages.${graph.byId.get(producer)!.stage}.outs.${owner!.out} }}, or list it under deps` : `add it to the stage's deps: [${rel}]`,
        });
      }
    });
  }
  return out;
}
