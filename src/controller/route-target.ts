// The router chosen by a Rollout's spec (SPEC §2 trafficRouting): where its weights go, what the run
// delivers (status.runTarget), and how a routing resource the cluster does not serve is reported.
import { serviceName } from '../api/service-name.js';
import type { Rollout, RunTarget } from '../api/v1alpha1.js';
import type { RouteTarget } from '../k8s/router.js';

/** The routing object of a Rollout; `stablePort` is the stable Service's first port (an HTTPRoute needs one). */
export function routeTarget(rollout: Rollout, stablePort?: number): RouteTarget {
  const namespace = rollout.metadata?.namespace ?? '';
  const name = rollout.metadata?.name ?? '';
  const common = {
    namespace,
    rootService: serviceName(namespace, rollout.spec.service) ?? rollout.spec.service,
    stableService: rollout.spec.stableService,
    canaryService: rollout.spec.canaryService,
    rollout: { name, uid: rollout.metadata?.uid ?? '' },
  };
  const gateway = rollout.spec.trafficRouting?.gatewayAPI;
  if (gateway) {
    return {
      ...common,
      kind: 'HTTPRoute',
      name: gateway.httpRoute ?? name,
      apiVersion: gateway.apiVersion ?? 'gateway.networking.k8s.io/v1',
      ...(gateway.rules ? { rules: gateway.rules } : {}),
      ...(stablePort !== undefined ? { stablePort } : {}),
    };
  }
  const smi = rollout.spec.trafficRouting?.smi;
  return {
    ...common,
    kind: 'TrafficSplit',
    name: smi?.trafficSplitName ?? name,
    apiVersion: smi?.apiVersion ?? 'split.smi-spec.io/v1alpha2',
  };
}

/** What the run delivers, as the machine compares it (SPEC §4: a change starts a new run). */
export function runTarget(target: RouteTarget): RunTarget {
  return {
    stableService: target.stableService,
    canaryService: target.canaryService,
    route: `${target.kind}/${target.name}`,
  };
}

/** SPEC §2: a router resource the cluster does not serve, the version named with the fix. */
export function notServedMessage(target: RouteTarget): string {
  return target.kind === 'TrafficSplit'
    ? `spec.trafficRouting.smi.apiVersion: ${target.apiVersion} TrafficSplit is not served by this cluster; ` +
        'name a version its mesh installs (e.g. split.smi-spec.io/v1alpha2) or install the CRD'
    : `spec.trafficRouting.gatewayAPI.apiVersion: ${target.apiVersion} HTTPRoute is not served by this cluster; ` +
        'install the Gateway API CRDs (standard channel) or name a version they serve ' +
        '(gateway.networking.k8s.io/v1, or v1beta1 for older meshes)';
}

/** The field of the spec that names the routing object, for messages. */
export function routeField(target: RouteTarget): string {
  return target.kind === 'TrafficSplit' ? 'spec.trafficRouting.smi' : 'spec.trafficRouting.gatewayAPI';
}
