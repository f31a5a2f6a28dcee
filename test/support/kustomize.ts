// Renders the kustomizations under deploy/ with `kubectl kustomize` (offline: no cluster is contacted).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

export const DEPLOY_DIR = path.resolve(__dirname, '..', '..', 'deploy');

/** Components (kind: Component), `labels:` and patch targets by label need kustomize v5 (kubectl 1.27+). */
const MIN_KUSTOMIZE_MAJOR = 5;

export type KustomizeStatus = { ok: true; kubectl: string; kustomize: string } | { ok: false; reason: string };

/** Whether this machine can render: kubectl present, with a kustomize new enough. */
export function kustomizeStatus(): KustomizeStatus {
  let out: string;
  try {
    out = execFileSync('kubectl', ['version', '--client', '-o', 'json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    return { ok: false, reason: missing ? 'kubectl is not installed (install kubectl 1.27 or later to render deploy/)' : `kubectl version failed: ${(err as Error).message}` };
  }
  const info = JSON.parse(out) as { clientVersion?: { gitVersion?: string }; kustomizeVersion?: string };
  const kubectl = info.clientVersion?.gitVersion ?? 'unknown';
  const kustomize = info.kustomizeVersion ?? '';
  const major = Number(/^v?(\d+)\./.exec(kustomize)?.[1] ?? 0);
  if (major < MIN_KUSTOMIZE_MAJOR) {
    return { ok: false, reason: `kubectl ${kubectl} embeds kustomize ${kustomize || '(unknown)'}; deploy/ needs kustomize v${MIN_KUSTOMIZE_MAJOR} (kubectl 1.27 or later)` };
  }
  return { ok: true, kubectl, kustomize };
}

/** Every directory under deploy/ that holds a kustomization.yaml, relative to deploy/. */
export function kustomizationDirs(root = DEPLOY_DIR): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    if (existsSync(path.join(dir, 'kustomization.yaml'))) found.push(path.relative(root, dir));
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) walk(path.join(dir, entry.name));
  };
  walk(root);
  return found.sort();
}

/** The documents `kubectl kustomize deploy/<dir>` prints. */
export function render(dir: string): Array<Record<string, unknown>> {
  const out = execFileSync('kubectl', ['kustomize', path.join(DEPLOY_DIR, dir)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  return YAML.parseAllDocuments(out).map((d) => {
    if (d.errors.length > 0) throw new Error(`kubectl kustomize ${dir} printed invalid YAML: ${d.errors[0].message}`);
    return d.toJS() as Record<string, unknown>;
  });
}

/**
 * The text of a Secret's key as deploy/<dir> gives it, before rendering: a `secretGenerator`'s
 * literal or file, or the `stringData` of a Secret in one of the kustomization's resources.
 */
export function exampleSecret(dir: string, name: string, key: string): string {
  const read = (file: string) => readFileSync(path.join(DEPLOY_DIR, dir, file), 'utf8');
  const kustomization = YAML.parse(read('kustomization.yaml')) as {
    resources?: string[];
    secretGenerator?: Array<{ name: string; literals?: string[]; files?: string[] }>;
  };
  const generator = kustomization.secretGenerator?.find((g) => g.name === name);
  for (const literal of generator?.literals ?? []) if (literal.startsWith(`${key}=`)) return literal.slice(key.length + 1);
  for (const entry of generator?.files ?? []) {
    // `file` names the key after the file; `key=file` names it explicitly.
    const [k, file] = entry.includes('=') ? entry.split('=', 2) : [path.posix.basename(entry), entry];
    if (k === key) return read(file);
  }
  for (const resource of kustomization.resources ?? []) {
    if (!/\.ya?ml$/.test(resource)) continue;
    for (const d of YAML.parseAllDocuments(read(resource))) {
      const doc = d.toJS() as { kind?: string; metadata?: { name?: string }; stringData?: Record<string, unknown> } | null;
      const value = doc?.kind === 'Secret' && doc.metadata?.name === name ? doc.stringData?.[key] : undefined;
      if (typeof value === 'string') return value;
    }
  }
  throw new Error(`deploy/${dir} gives no Secret ${name} with the key ${key}`);
}
