// The files the sidecar component mounts into the proxy's container, laid out under a scratch root as the kubelet writes them.
//
// A ConfigMap or Secret volume holds each key as a symlink `key -> ..data/key`, `..data` a symlink
// to a timestamped directory; an update writes a new directory and renames a new `..data` link
// over the old one (Kubernetes' AtomicWriter). updateVolume() does the same, so a test sees what
// the proxy sees in a pod.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEPLOY_DIR } from './kustomize';

/** Where deploy/components/sidecar/sidecar.yaml mounts each volume (the manifests test holds them to this). */
export const MOUNTS = {
  config: '/etc/ormai/config',
  policies: '/etc/ormai/policies',
  users: '/etc/ormai/users',
  secrets: '/etc/ormai/secrets',
  audit: '/var/log/ormai',
} as const;

export const COMPONENT_CONFIG = path.join(DEPLOY_DIR, 'components', 'sidecar', 'ormai.yaml');

let generation = 0;

/** Writes a volume's files the kubelet's way; a second call on the same directory is an update, swapped in atomically. */
export function updateVolume(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  const stamp = `..${new Date().toISOString().replace(/[-:.]/g, '_')}.${process.pid}_${++generation}`;
  mkdirSync(path.join(dir, stamp));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, stamp, name), text);
  let previous: string | undefined;
  try {
    previous = path.join(dir, readlinkSync(path.join(dir, '..data')));
  } catch {
    previous = undefined;
  }
  symlinkSync(stamp, path.join(dir, '..data_tmp'));
  renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  for (const name of Object.keys(files)) {
    try {
      symlinkSync(path.join('..data', name), path.join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  if (previous) rmSync(previous, { recursive: true, force: true });
}

export interface PodFiles {
  /** What the container sees as /: every mount lives under it. */
  root: string;
  /** The config file, as `serve --config` is given it in the pod. */
  configFile: string;
  /** The host path of a path inside the container. */
  at(containerPath: string): string;
}

/**
 * The component's ormai.yaml with its absolute paths moved under `root`, and the volumes filled
 * in: the policy, the users file, and the Secrets' keys under the names the projected volume gives them.
 */
export function layOutPodFiles(
  root: string,
  files: { policy: string; users: string; upstreamUrl: string; adminIdentities: string; auditKey: string },
): PodFiles {
  const at = (p: string) => path.join(root, p);
  const config = readFileSync(COMPONENT_CONFIG, 'utf8').replace(/(?<=[\s[{:,])\/(etc\/ormai|var\/log\/ormai)\//g, `${root}/$1/`);
  updateVolume(at(MOUNTS.config), { 'ormai.yaml': config });
  updateVolume(at(MOUNTS.policies), { 'policy.yaml': files.policy });
  updateVolume(at(MOUNTS.users), { 'users.yaml': files.users });
  updateVolume(at(MOUNTS.secrets), { 'upstream-url': files.upstreamUrl, 'admin-identities.yaml': files.adminIdentities, 'audit-key': files.auditKey });
  // An emptyDir: a plain writable directory.
  mkdirSync(at(MOUNTS.audit), { recursive: true });
  return { root, configFile: path.join(at(MOUNTS.config), 'ormai.yaml'), at };
}

/**
 * An example's placeholder admin identities file with each `token_sha256: REPLACE-ME` replaced by
 * the SHA-256 of that identity's token, as an operator pasting `ormai-proxy admin-token` lines would.
 */
export function fillIdentities(placeholder: string, tokens: Record<string, string>): string {
  let filled = 0;
  const text = placeholder.replace(/(\{ name: ([^,]+), token_sha256: )REPLACE-ME\b/g, (_, head: string, name: string) => {
    const token = tokens[name.trim()];
    if (token === undefined) throw new Error(`no token given for the placeholder identity ${name}`);
    filled++;
    return head + createHash('sha256').update(token, 'utf8').digest('hex');
  });
  if (filled === 0 || /^[^#\n]*REPLACE-ME/m.test(text)) throw new Error('the identities placeholder is not in the expected `{ name: …, token_sha256: REPLACE-ME }` form');
  return text;
}
