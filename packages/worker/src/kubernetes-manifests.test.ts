// The Kubernetes manifests (deploy/kubernetes, issue 16) as kubectl's kustomize renders them:
// every object validates against the Kubernetes API schemas (kubernetes-models; the
// ServiceMonitor against the Prometheus Operator's), the Deployment has its probes, resources
// and locked-down security context, and the environment each overlay gives the worker passes
// the worker's own settings validator (resolveConfig), production refusals included, so the
// manifests cannot drift from the settings the worker knows.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { toolMissing } from '@apx/core/testing/tools';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parseAllDocuments } from 'yaml';
import { resolveConfig, SETTINGS } from './config.js';

const HERE = import.meta.dirname ?? dirname(new URL(import.meta.url).pathname);
const KUBERNETES = resolve(HERE, '..', '..', '..', 'deploy', 'kubernetes');

// biome-ignore lint/suspicious/noExplicitAny: rendered objects are checked by the models below
type Obj = Record<string, any>;

const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  'apps/v1 Deployment': Deployment,
  'v1 Service': Service,
  'v1 ServiceAccount': ServiceAccount,
  'policy/v1 PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2 HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'monitoring.coreos.com/v1 ServiceMonitor': ServiceMonitor,
};

function render(overlay: string): Obj[] {
  const r = spawnSync('kubectl', ['kustomize', join(KUBERNETES, 'overlays', overlay)], { encoding: 'utf8' });
  assert.equal(r.status, 0, `kubectl kustomize ${overlay}:\n${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
}

const scratch = mkdtempSync(join(tmpdir(), 'apx-k8s-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/**
 * The worker container's environment, with paths inside its volumes moved into a scratch
 * directory (emptyDir: a writable directory; configMap: the files it projects), so that the
 * validator's checks of directories and files run as they would in the pod.
 */
function workerEnvironment(deployment: Obj, overlay: string): Record<string, string> {
  const pod = deployment.spec.template.spec;
  const container = pod.containers.find((c: Obj) => c.name === 'worker');
  const root = join(scratch, overlay);
  const mounts: Array<[string, string]> = [];
  for (const m of container.volumeMounts as Obj[]) {
    const volume = (pod.volumes as Obj[]).find((v) => v.name === m.name) as Obj;
    const local = join(root, m.mountPath);
    mkdirSync(local, { recursive: true });
    // A ConfigMap projects its keys as files; the operator creates it (here: the trust root).
    if (volume.configMap) writeFileSync(join(local, 'root.json'), '{}');
    mounts.push([m.mountPath, local]);
  }
  const env: Record<string, string> = {};
  for (const e of container.env as Obj[]) {
    assert.equal(typeof e.value, 'string', `${e.name} has a literal value`);
    const mount = mounts.find(([path]) => e.value === path || e.value.startsWith(`${path}/`));
    env[e.name] = mount ? mount[1] + e.value.slice(mount[0].length) : e.value;
  }
  return env;
}

describe('Kubernetes manifests (deploy/kubernetes)', { skip: toolMissing('kubectl') }, () => {
  for (const overlay of ['staging', 'production']) {
    it(`${overlay}: renders with kubectl kustomize, and every object validates`, () => {
      const objects = render(overlay);
      const kinds = objects.map((o) => `${o.apiVersion} ${o.kind}`).sort();
      assert.deepEqual(kinds, Object.keys(MODELS).sort());
      for (const o of objects) {
        const Model = MODELS[`${o.apiVersion} ${o.kind}`];
        assert.ok(Model, `${o.apiVersion} ${o.kind}`);
        assert.doesNotThrow(() => new Model(o as never).validate(), `${o.kind} ${o.metadata.name} is not valid`);
        assert.equal(o.metadata.namespace, `apx-${overlay}`);
      }
    });

    it(`${overlay}: the Deployment has probes, resources and a locked-down security context`, () => {
      const deployment = render(overlay).find((o) => o.kind === 'Deployment') as Obj;
      const pod = deployment.spec.template.spec;
      const container = pod.containers[0];
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.ok(pod.securityContext.runAsUser > 0);
      assert.equal(container.securityContext.readOnlyRootFilesystem, true);
      assert.equal(container.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
      assert.equal(container.livenessProbe.httpGet.path, '/healthz');
      assert.equal(container.startupProbe.httpGet.path, '/healthz');
      assert.equal(container.readinessProbe.httpGet.path, '/readyz');
      assert.ok(container.resources.requests.cpu && container.resources.requests.memory);
      // The drain ends well before the kubelet's kill: APX_DRAIN_SECONDS + 5 s for requests in flight.
      const drain = Number((container.env as Obj[]).find((e) => e.name === 'APX_DRAIN_SECONDS')?.value);
      assert.ok(
        drain + 5 < pod.terminationGracePeriodSeconds,
        `drain ${drain} s vs grace ${pod.terminationGracePeriodSeconds} s`,
      );
    });

    it(`${overlay}: the worker's settings validator accepts the environment it gives the worker`, () => {
      const deployment = render(overlay).find((o) => o.kind === 'Deployment') as Obj;
      const env = workerEnvironment(deployment, overlay);
      const known = new Set(SETTINGS.map((s) => s.env));
      for (const name of Object.keys(env)) assert.ok(known.has(name), `${name} is not a worker setting`);
      const { config } = resolveConfig(env);
      assert.equal(config.env, overlay);
      assert.equal(config.host, '0.0.0.0');
      assert.equal(config.port, 8080);
      assert.equal(config.grpcPort, 9191);
      assert.equal(config.strict, true);
      assert.equal(config.trustRepository, 'store');
      if (overlay === 'production') {
        assert.match(config.allowList?.toString() ?? 'none', /1\.0\.0.*1\.1\.0/);
        // What production refuses: strict mode off, no allow-list.
        assert.throws(() => resolveConfig({ ...env, APX_STRICT_MODE: 'false' }), /strict mode disabled/);
        const { ALLOWED_POLICY_VERSIONS: _, ...withoutList } = env;
        assert.throws(() => resolveConfig(withoutList), /without an allow-list/);
      }
    });
  }
});
