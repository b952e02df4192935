import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/*
 * NODE_EXTRA_CA_CERTS, handed over by the launcher (bin/dfwe) as DFWE_NODE_EXTRA_CA_CERTS so that
 * Node does not parse the file at every start (read the launcher's comment). Imported first by
 * the CLI: the variable is put back before anything copies the environment, so every process dfwe
 * starts sees it as the user set it. dfwe's own Node processes (a built-in stage, the Node
 * starter) are handed it over again (ownNodeEnv); this process reads the file only to connect to
 * a remote cache over TLS (extraCa).
 */

const HANDED = 'DFWE_NODE_EXTRA_CA_CERTS';

const handed = process.env[HANDED];
if (handed !== undefined) {
  delete process.env[HANDED];
  process.env.NODE_EXTRA_CA_CERTS = handed;
}

/**
 * The environment for a Node process of dfwe's own: NODE_EXTRA_CA_CERTS under the launcher's
 * name, so that it starts without parsing the file and puts it back for whatever it starts.
 */
export function ownNodeEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (env.NODE_EXTRA_CA_CERTS === undefined) return env;
  const out: NodeJS.ProcessEnv = { ...env, [HANDED]: env.NODE_EXTRA_CA_CERTS };
  delete out.NODE_EXTRA_CA_CERTS;
  return out;
}

let extra: string[] | undefined;

/**
 * The certificate authorities a TLS connection of this process trusts, where they are not Node's
 * own: Node's with the handed-over file's added, as NODE_EXTRA_CA_CERTS would have made them.
 * Undefined where nothing was handed over (Node read the variable itself, or there was none). A
 * file that cannot be read is warned about once and left out, as Node does.
 */
export function extraCa(): string[] | undefined {
  if (!handed) return undefined;
  if (extra) return extra;
  let pem = '';
  try {
    pem = readFileSync(handed, 'utf8');
  } catch (err) {
    process.stderr.write(`dfwe: warning: ignoring extra certificates from ${handed} (NODE_EXTRA_CA_CERTS): ${(err as Error).message}\n`);
  }
  // Loaded here, not imported: node:tls is 5-7 ms of a start, and every command imports this file.
  const { rootCertificates } = createRequire(import.meta.url)('node:tls') as typeof import('node:tls');
  extra = pem ? [...rootCertificates, pem] : [...rootCertificates];
  return extra;
}
