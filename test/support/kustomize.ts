// Renders the kustomizations under deploy/ with `kubectl kustomize` (offline: no cluster is contacted).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
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
