// How a Rollout or a TrafficSplit names a Service of its own namespace (SPEC §2, §3): a short name or
// `<name>.<namespace>.svc.cluster.local`. Validation, checks and the router read names through this one module.

/** A DNS-1123 label, as Kubernetes requires of a Service name. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_LABEL = 63;

const clusterSuffix = (namespace: string) => `.${namespace}.svc.cluster.local`;

/** The Service's name when `service` is a short name or the FQDN of `namespace`; else undefined. */
export function serviceName(namespace: string, service: string): string | undefined {
  const suffix = clusterSuffix(namespace);
  const name = service.endsWith(suffix) ? service.slice(0, -suffix.length) : service;
  return name.length <= MAX_LABEL && DNS_LABEL.test(name) ? name : undefined;
}

/** The Service as SPEC §3 writes a root service, `<name>.<namespace>.svc.cluster.local`; else undefined. */
export function serviceFqdn(namespace: string, service: string): string | undefined {
  const name = serviceName(namespace, service);
  return name === undefined ? undefined : `${name}${clusterSuffix(namespace)}`;
}
