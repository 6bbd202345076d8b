import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

/** A Kubernetes object as read from YAML. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** One manifest with the file it came from, for error messages. */
export interface Rendered {
  file: string;
  object: K8sObject;
}

/** Kustomization fields this renderer understands; anything else fails the test loudly. */
const SUPPORTED = new Set([
  'apiVersion',
  'kind',
  'resources',
  'namespace',
  'images',
  'replicas',
  'patches',
  'components',
]);

/** Kinds that live outside namespaces, among those the manifests use. */
const CLUSTER_SCOPED = new Set(['Namespace']);

export function readYamlDocuments(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors.map(String).join('; ')}`);
    return doc.toJS() as unknown;
  });
}

/**
 * A small, offline stand-in for `kustomize build` covering what deploy/k8s uses: resources (files
 * and directories), namespace, images, replicas and strategic-merge patches by kind and name.
 * The tests render with it so the overlay's result is validated, not just its pieces.
 */
export function kustomize(dir: string): Rendered[] {
  const file = join(dir, 'kustomization.yaml');
  const [k] = readYamlDocuments(file) as Array<Record<string, unknown>>;
  const unknown = Object.keys(k).filter((key) => !SUPPORTED.has(key));
  if (unknown.length) throw new Error(`${file}: unsupported fields ${unknown.join(', ')}`);
  if (k.kind !== 'Kustomization' && k.kind !== 'Component')
    throw new Error(`${file}: neither a Kustomization nor a Component`);

  const out: Rendered[] = [];
  for (const entry of (k.resources as string[] | undefined) ?? []) {
    const path = resolve(dir, entry);
    if (!existsSync(path)) throw new Error(`${file}: resource ${entry} does not exist`);
    if (statSync(path).isDirectory()) out.push(...kustomize(path));
    else
      for (const object of readYamlDocuments(path))
        out.push({ file: path, object: object as K8sObject });
  }

  // A component's resources join those of the kustomization that lists it (kustomize applies
  // them after its resources and before its own patches, namespace and images).
  for (const entry of (k.components as string[] | undefined) ?? []) {
    const path = resolve(dir, entry);
    if (!existsSync(join(path, 'kustomization.yaml')))
      throw new Error(`${file}: component ${entry} has no kustomization.yaml`);
    out.push(...kustomize(path));
  }

  for (const p of (k.patches as Array<{ path?: string }> | undefined) ?? []) {
    if (!p.path) throw new Error(`${file}: only file patches are supported`);
    const patchFile = resolve(dir, p.path);
    for (const patch of readYamlDocuments(patchFile) as K8sObject[]) {
      const target = out.find(
        (r) =>
          r.object.kind === patch.kind &&
          r.object.apiVersion === patch.apiVersion &&
          r.object.metadata.name === patch.metadata.name,
      );
      if (!target)
        throw new Error(`${patchFile}: no ${patch.kind} ${patch.metadata.name} to patch`);
      target.object = strategicMerge(target.object, patch) as K8sObject;
    }
  }

  const namespace = k.namespace as string | undefined;
  if (namespace)
    for (const r of out)
      if (!CLUSTER_SCOPED.has(r.object.kind)) r.object.metadata.namespace = namespace;

  for (const image of (k.images as Array<Record<string, string>> | undefined) ?? []) {
    let used = false;
    for (const r of out) {
      for (const c of containersOf(r.object)) {
        if (imageName(c.image as string) !== image.name) continue;
        c.image = `${image.newName ?? image.name}:${image.newTag ?? 'latest'}`;
        used = true;
      }
    }
    if (!used) throw new Error(`${file}: image ${image.name} is used by no container`);
  }

  for (const rep of (k.replicas as Array<{ name: string; count: number }> | undefined) ?? []) {
    const target = out.find(
      (r) => r.object.kind === 'Deployment' && r.object.metadata.name === rep.name,
    );
    if (!target) throw new Error(`${file}: replicas for unknown Deployment ${rep.name}`);
    (target.object.spec as Record<string, unknown>).replicas = rep.count;
  }
  return out;
}

function imageName(image: string): string {
  const at = image.indexOf('@');
  const noDigest = at >= 0 ? image.slice(0, at) : image;
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

/** The containers (init containers included) of a workload's pod template. */
export function containersOf(object: K8sObject): Array<Record<string, unknown>> {
  const spec = podSpecOf(object);
  if (!spec) return [];
  return [
    ...((spec.initContainers as Array<Record<string, unknown>> | undefined) ?? []),
    ...((spec.containers as Array<Record<string, unknown>> | undefined) ?? []),
  ];
}

export function podSpecOf(object: K8sObject): Record<string, unknown> | null {
  const spec = object.spec as Record<string, any> | undefined;
  if (object.kind === 'Deployment' || object.kind === 'Job')
    return (spec?.template?.spec as Record<string, unknown>) ?? null;
  return null;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Strategic merge as kustomize applies it for these kinds: maps merge key by key (null deletes),
 * lists of named objects (containers, env, ports, volumes...) merge by name, other lists replace.
 */
export function strategicMerge(base: unknown, patch: unknown): unknown {
  if (isObject(base) && isObject(patch)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete out[key];
      else out[key] = key in base ? strategicMerge(base[key], value) : value;
    }
    return out;
  }
  if (
    Array.isArray(base) &&
    Array.isArray(patch) &&
    [...base, ...patch].every((item) => isObject(item) && typeof item.name === 'string')
  ) {
    const out = base.map((item) => ({ ...(item as Record<string, unknown>) }));
    for (const item of patch as Array<Record<string, unknown>>) {
      const i = out.findIndex((o) => o.name === item.name);
      if (i >= 0) out[i] = strategicMerge(out[i], item) as Record<string, unknown>;
      else out.push(item);
    }
    return out;
  }
  return patch;
}
