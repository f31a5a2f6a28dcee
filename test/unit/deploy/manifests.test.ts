// deploy/: every kustomization renders with `kubectl kustomize`, every document is valid against the Kubernetes schemas (unknown fields refused), and the sidecar is wired as the proxy needs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import YAML from 'yaml';
import { AdminAuth, AdminToken } from '../../../src/admin/auth';
import { loadAuditKey } from '../../../src/audit/redact';
import { parseUsersText } from '../../../src/auth/users';
import { hashPassword } from '../../../src/auth/verifier';
import { loadConfig } from '../../../src/config/load';
import { configSchema, type RawConfig } from '../../../src/config/schema';
import { silentLogger } from '../../../src/log';
import { parsePolicyText } from '../../../src/policy/load';
import { schemaPackages, validateManifests } from '../../support/k8s-schema';
import { DEPLOY_DIR, exampleSecret, kustomizationDirs, kustomizeStatus, render } from '../../support/kustomize';
import { COMPONENT_CONFIG, fillIdentities, layOutPodFiles, MOUNTS } from '../../support/pod-files';

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const status = kustomizeStatus();
if (!status.ok) process.stderr.write(`\ndeploy/ render tests SKIPPED: ${status.reason}\n`);
const whenKubectl = status.ok ? describe : describe.skip;

/** The kustomizations that make whole deployments (the rest are components they use). */
const DEPLOYMENTS = ['base', 'examples/existing-agent'];

const readYaml = (file: string) => YAML.parse(readFileSync(path.join(DEPLOY_DIR, file), 'utf8')) as Doc;

/** A Secret's name as rendered: as written, or with the content hash a secretGenerator appends. */
const isSecret = (rendered: string, name: string) => rendered === name || new RegExp(`^${name}-[a-z0-9]{10}$`).test(rendered);

whenKubectl(`deploy/ rendered by kubectl kustomize (${status.ok ? `${status.kubectl}, kustomize ${status.kustomize}` : `SKIPPED: ${status.reason}`})`, () => {
  const rendered = new Map<string, Doc[]>();
  beforeAll(() => {
    for (const dir of kustomizationDirs()) rendered.set(dir, render(dir));
  });

  test('the kustomizations are the ones documented', () => {
    expect([...rendered.keys()]).toEqual(['base', 'components/podmonitor', 'components/sidecar', 'examples/existing-agent']);
  });

  test.each(['base', 'components/podmonitor', 'components/sidecar', 'examples/existing-agent'])(
    `%s: every document is valid against the Kubernetes API schemas, unknown fields refused (${schemaPackages()})`,
    (dir) => {
      const docs = rendered.get(dir)!;
      expect(docs.length).toBeGreaterThan(0);
      expect(validateManifests(docs)).toEqual([]);
    },
  );

  test('every component is used by a deployment, so its output is validated in place too', () => {
    const used = DEPLOYMENTS.flatMap((dir) => ((readYaml(`${dir}/kustomization.yaml`).components ?? []) as string[]).map((c) => path.normalize(path.join(dir, c))));
    for (const dir of rendered.keys()) if (dir.startsWith('components/')) expect(used).toContain(dir);
  });

  describe.each(DEPLOYMENTS)('%s', (dir) => {
    let docs: Doc[];
    let deployment: IDeployment;
    let proxy: IContainer;
    let volumes: Map<string, IVolume>;
    let config: RawConfig;
    const byKind = (kind: string) => docs.filter((d) => d.kind === kind);
    const named = (kind: string, name: string) => byKind(kind).find((d) => d.metadata.name === name);
    /** The volume mounted at a directory of the proxy's container, and that mount. */
    const mountAt = (dir: string) => {
      const mount = proxy.volumeMounts!.find((m) => m.mountPath === dir);
      return { mount, volume: mount && volumes.get(mount.name) };
    };

    beforeAll(() => {
      docs = rendered.get(dir)!;
      const deployments = byKind('Deployment') as IDeployment[];
      expect(deployments).toHaveLength(1);
      deployment = deployments[0];
      proxy = deployment.spec!.template.spec!.initContainers![0];
      volumes = new Map(deployment.spec!.template.spec!.volumes!.map((v) => [v.name, v]));
      const configMap = byKind('ConfigMap').find((d) => /^ormai-proxy-config-[a-z0-9]{10}$/.test(d.metadata.name));
      config = configSchema.parse(YAML.parse(configMap!.data['ormai.yaml']));
    });

    test('the proxy is a native sidecar: the first init container, restartPolicy Always, before the agent', () => {
      expect(proxy.name).toBe('ormai-proxy');
      expect(proxy.restartPolicy).toBe('Always');
      expect(deployment.spec!.template.spec!.containers.map((c) => c.name)).not.toContain('ormai-proxy');
      expect(proxy.args).toEqual(['serve', '--config', `${MOUNTS.config}/ormai.yaml`]);
    });

    test('it runs as the image numeric user, non-root, with the restricted pod-security settings', () => {
      const user = /^USER (\d+):(\d+)$/m.exec(readFileSync(path.resolve(DEPLOY_DIR, '..', 'Dockerfile'), 'utf8'));
      expect(user).not.toBeNull();
      expect(proxy.securityContext).toEqual({
        runAsUser: Number(user![1]),
        runAsGroup: Number(user![2]),
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(proxy.securityContext!.runAsUser).toBeGreaterThan(0);
    });

    test('startup and liveness probes ask /healthz, readiness /readyz, on the admin port the config listens on', () => {
      const admin = proxy.ports!.find((p) => p.name === 'admin')!;
      expect(admin.containerPort).toBe(Number(config.admin_listen.split(':').pop()));
      expect(proxy.startupProbe!.httpGet).toEqual({ path: '/healthz', port: 'admin' });
      expect(proxy.livenessProbe!.httpGet).toEqual({ path: '/healthz', port: 'admin' });
      expect(proxy.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 'admin' });
      // Reachable by the kubelet: not loopback. The agent's port stays on the pod's loopback.
      expect(config.admin_listen).toMatch(/^(0\.0\.0\.0|\[::\]):\d+$/);
      expect(config.listen).toMatch(/^127\.0\.0\.1:/);
    });

    test('the admin API knows its callers by name (identities_file, no shared token) and /metrics needs a token too', () => {
      expect(config.admin.metrics_auth).toBe(true);
      expect(config.admin.identities_file).toBe(`${MOUNTS.secrets}/admin-identities.yaml`);
      // A shared token would be one anonymous approver, in a Secret whoever can read it could use.
      expect(config.admin.token_file).toBeUndefined();
    });

    test('the pod holds no bearer token: the admin Secret gives it only identities.yaml (digests), the metrics Secret is not mounted', () => {
      const spec = deployment.spec!.template.spec!;
      const sources = [...volumes.values()].flatMap((v) => [
        ...(v.secret ? [{ name: v.secret.secretName!, items: v.secret.items }] : []),
        ...(v.projected?.sources ?? []).flatMap((s) => (s.secret ? [{ name: s.secret.name!, items: s.secret.items }] : [])),
      ]);
      const admin = sources.filter((s) => isSecret(s.name, 'ormai-proxy-admin'));
      expect(admin.map((s) => s.items)).toEqual([[{ key: 'identities.yaml', path: path.posix.basename(config.admin.identities_file!) }]]);
      expect(sources.filter((s) => isSecret(s.name, 'ormai-proxy-metrics'))).toEqual([]);
      for (const c of [...spec.containers, ...spec.initContainers!]) {
        for (const e of c.env ?? []) expect(isSecret(e.valueFrom?.secretKeyRef?.name ?? '', 'ormai-proxy-metrics')).toBe(false);
        for (const e of c.envFrom ?? []) expect(e.secretRef).toBeUndefined();
      }
    });

    test('the metrics Secret, for Prometheus, is in the rendering with the one key token', () => {
      const metrics = byKind('Secret').filter((d) => isSecret(d.metadata.name, 'ormai-proxy-metrics'));
      expect(metrics).toHaveLength(1);
      expect(Object.keys(metrics[0].data ?? metrics[0].stringData)).toEqual(['token']);
    });

    test('whole directories are mounted (no subPath), read-only but for the audit emptyDir', () => {
      for (const m of proxy.volumeMounts!) {
        expect(m).not.toHaveProperty('subPath');
        expect(m).not.toHaveProperty('subPathExpr');
        expect(m.readOnly ?? false).toBe(m.mountPath !== MOUNTS.audit);
      }
      expect(proxy.volumeMounts!.map((m) => m.mountPath).sort()).toEqual(Object.values(MOUNTS).sort());
    });

    test('each file the config names is in the volume mounted at its directory, under that name', () => {
      const inVolume = (file: string, kind: 'configMap' | 'secret' | 'projected', name?: string) => {
        const { volume } = mountAt(path.posix.dirname(file));
        expect(volume).toBeDefined();
        const base = path.posix.basename(file);
        if (kind === 'configMap') {
          expect(volume!.configMap?.name).toBe(name);
          // The whole ConfigMap: every key is a file, and a new key shows without a new mount.
          expect(volume!.configMap).not.toHaveProperty('items');
          expect(Object.keys(docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === name)!.data)).toContain(base);
        } else if (kind === 'secret') {
          expect(volume!.secret?.items?.map((i) => i.path)).toContain(base);
        } else {
          expect(volume!.projected!.sources!.flatMap((s) => s.secret?.items ?? []).map((i) => i.path)).toContain(base);
        }
      };
      const configVolume = mountAt(MOUNTS.config).volume!;
      inVolume(`${MOUNTS.config}/ormai.yaml`, 'configMap', configVolume.configMap!.name);
      for (const p of config.policies) inVolume(p, 'configMap', 'ormai-proxy-policies');
      inVolume(config.auth.users_file!, 'secret');
      inVolume(config.upstream.url_file!, 'projected');
      inVolume(config.admin.identities_file!, 'projected');
      inVolume(config.audit.key_file!, 'projected');
      const fileSinks = config.audit.sinks.filter((s) => s.type === 'file');
      expect(fileSinks).toHaveLength(1);
      expect(mountAt(path.posix.dirname((fileSinks[0] as { path: string }).path)).volume!.emptyDir).toBeDefined();
    });

    test('the policies ConfigMap keeps its name (hot reload through the mounted directory); the config one is hashed (a change rolls the pods)', () => {
      expect(named('ConfigMap', 'ormai-proxy-policies')).toBeDefined();
      expect(mountAt(MOUNTS.config).volume!.configMap!.name).toMatch(/^ormai-proxy-config-[a-z0-9]{10}$/);
      // The users Secret is hot-reloaded too.
      expect(mountAt(MOUNTS.users).volume!.secret!.secretName).toBe('ormai-proxy-users');
      expect(named('Secret', 'ormai-proxy-users')).toBeDefined();
    });

    test('every ConfigMap and Secret the pod and the PodMonitor name is in the same rendering', () => {
      const spec = deployment.spec!.template.spec!;
      const wanted: Array<[string, string]> = [];
      for (const v of spec.volumes ?? []) {
        if (v.configMap) wanted.push(['ConfigMap', v.configMap.name!]);
        if (v.secret) wanted.push(['Secret', v.secret.secretName!]);
        for (const s of v.projected?.sources ?? []) if (s.secret) wanted.push(['Secret', s.secret.name!]);
      }
      for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
        for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) wanted.push(['Secret', e.valueFrom.secretKeyRef.name!]);
      }
      for (const pm of byKind('PodMonitor')) for (const ep of pm.spec.podMetricsEndpoints) wanted.push(['Secret', ep.authorization.credentials.name]);
      expect(wanted.length).toBeGreaterThan(5);
      for (const [kind, name] of wanted) expect([kind, name, named(kind, name) !== undefined]).toEqual([kind, name, true]);
    });

    test('the whole pod meets the restricted Pod Security Standard (a namespace can enforce it)', () => {
      const spec = deployment.spec!.template.spec!;
      const pod = spec.securityContext ?? {};
      expect([spec.hostNetwork, spec.hostPID, spec.hostIPC].filter(Boolean)).toEqual([]);
      expect((spec.volumes ?? []).filter((v) => v.hostPath)).toEqual([]);
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        const sc = c.securityContext ?? {};
        expect([c.name, sc.privileged ?? false, sc.allowPrivilegeEscalation, sc.capabilities?.drop]).toEqual([c.name, false, false, ['ALL']]);
        expect([c.name, sc.capabilities?.add ?? []]).toEqual([c.name, []]);
        expect([c.name, sc.runAsNonRoot ?? pod.runAsNonRoot]).toEqual([c.name, true]);
        expect([c.name, sc.runAsUser ?? pod.runAsUser ?? 1]).not.toEqual([c.name, 0]);
        expect([c.name, (sc.seccompProfile ?? pod.seccompProfile)?.type]).toEqual([c.name, 'RuntimeDefault']);
      }
    });

    test("the agent's containers mount none of the proxy's volumes", () => {
      const spec = deployment.spec!.template.spec!;
      const others = [...spec.containers, ...spec.initContainers!.slice(1)];
      const proxyVolumes = new Set(proxy.volumeMounts!.map((m) => m.name));
      for (const c of others) for (const m of c.volumeMounts ?? []) expect(proxyVolumes.has(m.name)).toBe(false);
    });

    test('the rendered config and policy are the files in deploy/ (the integration test runs those against a database)', () => {
      const configMap = byKind('ConfigMap').find((d) => d.metadata.name.startsWith('ormai-proxy-config-'))!;
      expect(configMap.data['ormai.yaml']).toBe(readFileSync(COMPONENT_CONFIG, 'utf8'));
      const policy = named('ConfigMap', 'ormai-proxy-policies')!.data['policy.yaml'] as string;
      expect(policy).toBe(readFileSync(path.join(DEPLOY_DIR, dir, 'policy.yaml'), 'utf8'));
      expect(parsePolicyText(policy, 'policy.yaml').name).toMatch(/\S/);
    });
  });

  describe('base', () => {
    let docs: Doc[];
    let podLabels: Record<string, string>;
    const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => podLabels[k] === v);
    beforeAll(() => {
      docs = rendered.get('base')!;
      podLabels = docs.find((d) => d.kind === 'Deployment')!.spec.template.metadata.labels;
    });

    test('the NetworkPolicy lets only Prometheus in the monitoring namespace reach the pods, on the admin port only', () => {
      const [policy] = docs.filter((d) => d.kind === 'NetworkPolicy');
      expect(selects(policy.spec.podSelector.matchLabels)).toBe(true);
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
      expect(policy.spec.ingress).toEqual([
        {
          from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }],
          ports: [{ protocol: 'TCP', port: 9090 }],
        },
      ]);
    });

    test('the PodDisruptionBudget and the metrics Service select the agent pods', () => {
      const deployment = docs.find((d) => d.kind === 'Deployment')!;
      const [pdb] = docs.filter((d) => d.kind === 'PodDisruptionBudget');
      expect(selects(pdb.spec.selector.matchLabels)).toBe(true);
      expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas);
      const [service] = docs.filter((d) => d.kind === 'Service');
      expect(selects(service.spec.selector)).toBe(true);
      expect(service.spec.ports).toEqual([{ name: 'admin', port: 9090, targetPort: 9090, protocol: 'TCP' }]);
    });
  });

  test('the PodMonitor scrapes the sidecars with the metrics token from its own Secret, never an admin one, under the job the alert rules use', () => {
    const docs = rendered.get('examples/existing-agent')!;
    const [monitor] = docs.filter((d) => d.kind === 'PodMonitor');
    expect(monitor.spec.selector.matchLabels).toEqual({ 'ormai-proxy/sidecar': 'true' });
    expect(docs.find((d) => d.kind === 'Deployment')!.spec.template.metadata.labels['ormai-proxy/sidecar']).toBe('true');
    expect(monitor.spec.podMetricsEndpoints).toHaveLength(1);
    const [endpoint] = monitor.spec.podMetricsEndpoints;
    expect(endpoint).toMatchObject({ port: 'admin', path: '/metrics', authorization: { type: 'Bearer', credentials: { key: 'token' } } });
    const name = endpoint.authorization.credentials.name as string;
    // The generated Secret's hashed name, written into the PodMonitor by the component's nameReference.
    expect(name).toMatch(/^ormai-proxy-metrics-[a-z0-9]{10}$/);
    const secret = docs.find((d) => d.kind === 'Secret' && d.metadata.name === name)!;
    expect(Object.keys(secret.data ?? secret.stringData)).toEqual(['token']);
    expect(endpoint.relabelings).toContainEqual({ action: 'replace', targetLabel: 'job', replacement: 'ormai-proxy' });
  });
});

describe('the schema check is strict', () => {
  const deployment = (sidecar: Doc = {}, top: Doc = {}) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'agent' },
    spec: {
      selector: { matchLabels: { app: 'agent' } },
      template: {
        metadata: { labels: { app: 'agent' } },
        spec: {
          initContainers: [{ name: 'ormai-proxy', image: 'ormai-proxy:0.1.0', restartPolicy: 'Always', ports: [{ name: 'admin', containerPort: 9090 }], ...sidecar }],
          containers: [{ name: 'agent', image: 'agent:1' }],
        },
      },
    },
    ...top,
  });
  const errors = (doc: unknown) => validateManifests([doc]).flatMap((p) => p.errors);

  test('a valid document passes', () => {
    expect(validateManifests([deployment()])).toEqual([]);
  });

  test('a misspelled field is refused, at any depth', () => {
    const doc = deployment();
    const sidecar = doc.spec.template.spec.initContainers[0] as Doc;
    sidecar.restartPolcy = sidecar.restartPolicy;
    delete sidecar.restartPolicy;
    expect(errors(doc).join('\n')).toMatch(/restartPolcy/);
    expect(errors(deployment({ securityContext: { runAsNonRoot: true, capabilities: { dorp: ['ALL'] } } })).join('\n')).toMatch(/dorp/);
    expect(errors(deployment({}, { extra: true })).join('\n')).toMatch(/extra/);
    expect(errors({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, strinData: { a: 'b' } }).join('\n')).toMatch(/strinData/);
  });

  test('a wrong type or a value outside an enum is refused', () => {
    expect(errors(deployment({ ports: [{ name: 'admin', containerPort: '9090' }] })).join('\n')).toMatch(/containerPort/);
    expect(errors(deployment({ imagePullPolicy: 'Sometimes' })).join('\n')).toMatch(/imagePullPolicy/);
  });

  test('a custom resource (PodMonitor) is checked the same way', () => {
    const monitor = (endpoint: Doc) => ({
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PodMonitor',
      metadata: { name: 'm' },
      spec: { selector: { matchLabels: { a: 'b' } }, podMetricsEndpoints: [{ port: 'admin', ...endpoint }] },
    });
    expect(validateManifests([monitor({ path: '/metrics' })])).toEqual([]);
    expect(errors(monitor({ authorisation: { type: 'Bearer' } })).join('\n')).toMatch(/authorisation/);
  });

  test('a kind without a schema is refused, not skipped', () => {
    expect(errors({ apiVersion: 'apps/v1', kind: 'Deploymnt', metadata: { name: 'x' } })).toEqual(['no schema for apiVersion apps/v1 kind Deploymnt']);
    expect(errors({ apiVersion: 'example.com/v1', kind: 'Widget' })).toHaveLength(1);
  });
});

describe('the example Secrets are placeholders the proxy refuses', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-deploy-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test.each(DEPLOYMENTS)('%s: the users file is refused for its placeholder verifier alone', (example) => {
    const text = exampleSecret(example, 'ormai-proxy-users', 'users.yaml');
    expect(() => parseUsersText(text, 'users.yaml')).toThrow(/scram_verifier: not a SCRAM-SHA-256 verifier/);
    const real = text.replace(/"REPLACE-ME[^"]*"/, JSON.stringify(hashPassword('a-real-password', 4096)));
    expect(parseUsersText(real, 'users.yaml').size).toBe(1);
  });

  test.each(DEPLOYMENTS)('%s: the admin identities file, laid out as in the pod, is refused for its placeholder digests alone', (example) => {
    const placeholder = exampleSecret(example, 'ormai-proxy-admin', 'identities.yaml');
    // The component's ormai.yaml, loaded as `serve` loads it, with the example's files where the volumes put them.
    const load = (identities: string) =>
      AdminAuth.fromConfig(
        loadConfig(
          layOutPodFiles(mkdtempSync(path.join(dir, 'pod-')), {
            policy: readFileSync(path.join(DEPLOY_DIR, example, 'policy.yaml'), 'utf8'),
            users: exampleSecret(example, 'ormai-proxy-users', 'users.yaml'),
            upstreamUrl: exampleSecret(example, 'ormai-proxy-upstream', 'url'),
            adminIdentities: identities,
            auditKey: exampleSecret(example, 'ormai-proxy-audit', 'key'),
          }).configFile,
          {},
        ),
      );
    const entries = (YAML.parse(placeholder) as { identities: unknown[] }).identities;
    expect(entries.length).toBeGreaterThanOrEqual(2);
    let refused = 'accepted';
    try {
      load(placeholder);
    } catch (err) {
      refused = (err as Error).message;
    }
    // Every entry is refused, each for its digest.
    expect(refused).toMatch(/admin identities file .*admin-identities\.yaml/);
    for (let i = 0; i < entries.length; i++) expect(refused).toContain(`identities.${i}.token_sha256: expected 64 lowercase hex digits`);

    const tokens = { 'alice@example.com': 'alice-token-1c9d0e7a54f2b3', prometheus: 'prometheus-token-7b2f60d19ae8c4' };
    const auth = load(fillIdentities(placeholder, tokens));
    expect(auth.identify(`Bearer ${tokens['alice@example.com']}`)).toEqual({ name: 'alice@example.com', shared: false, role: 'admin' });
    expect(auth.identify(`Bearer ${tokens.prometheus}`)).toEqual({ name: 'prometheus', shared: false, role: 'metrics' });
  });

  test.each(DEPLOYMENTS)('%s: the metrics token is refused by the rules for admin tokens', (example) => {
    expect(() => new AdminToken(exampleSecret(example, 'ormai-proxy-metrics', 'token'))).toThrow(/admin token/);
  });

  test.each(DEPLOYMENTS)('%s: the audit key is refused', (example) => {
    const file = path.join(dir, 'audit-key');
    writeFileSync(file, exampleSecret(example, 'ormai-proxy-audit', 'key'));
    expect(() => loadAuditKey(file, silentLogger)).toThrow(/at least 32 bytes/);
  });

  test.each(DEPLOYMENTS)('%s: the upstream URL names no real host and asks for a verified TLS connection', (example) => {
    const u = new URL(exampleSecret(example, 'ormai-proxy-upstream', 'url'));
    expect(u.hostname).toMatch(/\.invalid$/);
    expect(u.searchParams.get('sslmode')).toBe('verify-full');
  });
});
