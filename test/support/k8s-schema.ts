// Validates Kubernetes manifests offline against the API's own schemas, rejecting unknown fields as kubectl --validate=strict does.
//
// Two checks, both from the `kubernetes-models` packages (generated from the Kubernetes 1.33
// OpenAPI definitions, and from the prometheus-operator CRDs for PodMonitor):
// - their ajv validators: types, enums, formats and required fields. They accept unknown
//   fields (the OpenAPI definitions do not forbid them; the API server drops them);
// - their TypeScript interfaces, by compiling each document as an object literal of its kind's
//   type: TypeScript's excess-property check refuses a field the type does not declare at any
//   depth (`restartPolcy`, a key one level too deep), which is what makes the check strict.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export interface ManifestProblem {
  /** Index of the document in the list given. */
  index: number;
  /** kind/name of the document, for messages. */
  resource: string;
  errors: string[];
}

interface KubeDocument {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: { name?: unknown };
}

/** API groups with a schema here, each the module folder that holds its kinds. */
const MODULES: Record<string, string> = {
  v1: 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'policy/v1': 'kubernetes-models/policy/v1',
  'networking.k8s.io/v1': 'kubernetes-models/networking.k8s.io/v1',
  'monitoring.coreos.com/v1': '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1',
};

type Model = new (data: unknown) => { validate(): void };

function modulePath(doc: KubeDocument): string | undefined {
  const folder = typeof doc.apiVersion === 'string' ? MODULES[doc.apiVersion] : undefined;
  if (!folder || typeof doc.kind !== 'string' || !/^[A-Z][A-Za-z0-9]*$/.test(doc.kind)) return undefined;
  try {
    require.resolve(`${folder}/${doc.kind}`);
  } catch {
    return undefined;
  }
  return `${folder}/${doc.kind}`;
}

function resourceName(doc: KubeDocument): string {
  return `${String(doc.kind)}/${String(doc.metadata?.name ?? '?')}`;
}

function schemaErrors(doc: KubeDocument, module: string): string[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ModelClass = (require(module) as Record<string, Model>)[doc.kind as string];
  try {
    new ModelClass(doc).validate();
    return [];
  } catch (err) {
    const errors = (err as { errors?: Array<{ instancePath: string; message?: string; params?: unknown }> }).errors;
    if (!errors) return [(err as Error).message];
    return errors.map((e) => `${e.instancePath || '/'}: ${e.message ?? 'invalid'}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`);
  }
}

/** Compiles one source file per document; a file's diagnostics are its document's unknown fields and wrong types. */
function typeErrors(docs: ReadonlyArray<{ index: number; doc: KubeDocument; module: string }>): Map<number, string[]> {
  // Inside the repository, so that the packages resolve from its node_modules.
  const dir = path.resolve(__dirname, '__manifests__');
  const sources = new Map<string, { index: number; text: string }>();
  for (const { index, doc, module } of docs) {
    const text = `import type { I${doc.kind as string} as Kind } from '${module}';\nexport const document: Kind = ${JSON.stringify(doc, null, 1)};\n`;
    sources.set(path.join(dir, `document-${index}.ts`), { index, text });
  }
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (file, language, ...rest) => {
    const source = sources.get(path.resolve(file));
    return source ? ts.createSourceFile(file, source.text, language) : getSourceFile.call(host, file, language, ...rest);
  };
  host.fileExists = (file) => sources.has(path.resolve(file)) || fileExists.call(host, file);
  host.readFile = (file) => sources.get(path.resolve(file))?.text ?? readFile.call(host, file);
  const program = ts.createProgram([...sources.keys()], options, host);
  const found = new Map<number, string[]>();
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const source = d.file && sources.get(path.resolve(d.file.fileName));
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ').replace(/\s+/g, ' ');
    if (!source) throw new Error(`the schema check itself failed to compile: ${message}`);
    const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
    const at = d.file!.text.split('\n')[line].trim();
    found.set(source.index, [...(found.get(source.index) ?? []), `${message} (at ${at})`]);
  }
  return found;
}

/**
 * Base64 values as the API server reads them: Go's decoder skips line breaks, and kustomize's
 * secretGenerator wraps its base64 at 70 columns, which the schemas' "byte" format would refuse.
 */
function asDecoded(doc: KubeDocument): KubeDocument {
  const field = doc.apiVersion === 'v1' && doc.kind === 'Secret' ? 'data' : doc.apiVersion === 'v1' && doc.kind === 'ConfigMap' ? 'binaryData' : undefined;
  const values = field && (doc as Record<string, unknown>)[field];
  if (!values || typeof values !== 'object') return doc;
  const unwrapped = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, typeof v === 'string' ? v.replace(/[\r\n]/g, '') : v]));
  return { ...doc, [field]: unwrapped } as KubeDocument;
}

/** Every document's problems; an empty list when all are valid. A kind without a schema here is a problem, never skipped. */
export function validateManifests(documents: readonly unknown[]): ManifestProblem[] {
  const problems = new Map<number, ManifestProblem>();
  const add = (index: number, doc: KubeDocument, errors: string[]) => {
    if (errors.length === 0) return;
    const p = problems.get(index) ?? { index, resource: resourceName(doc), errors: [] };
    p.errors.push(...errors);
    problems.set(index, p);
  };
  const typed: Array<{ index: number; doc: KubeDocument; module: string }> = [];
  documents.forEach((value, index) => {
    const doc = asDecoded((value ?? {}) as KubeDocument);
    const module = typeof value === 'object' && value !== null ? modulePath(doc) : undefined;
    if (!module) {
      add(index, doc, [`no schema for apiVersion ${String(doc.apiVersion)} kind ${String(doc.kind)}`]);
      return;
    }
    add(index, doc, schemaErrors(doc, module));
    typed.push({ index, doc, module });
  });
  for (const [index, errors] of typeErrors(typed)) add(index, typed.find((t) => t.index === index)!.doc, errors);
  return [...problems.values()].sort((a, b) => a.index - b.index);
}

/** The installed Kubernetes schema packages and their versions, for messages. */
export function schemaPackages(): string {
  const version = (name: string) => (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version: string }).version;
  return `kubernetes-models ${version('kubernetes-models')}, @kubernetes-models/prometheus-operator ${version('@kubernetes-models/prometheus-operator')}`;
}
