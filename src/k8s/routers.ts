// The router factory: the spec's target chooses the router (SMI TrafficSplit or Gateway API HTTPRoute),
// so the reconciler and actuator never know which one is in use.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Router, RouteTarget } from './router.js';
import { HttpRouteRouter } from './httproute/router.js';
import { TrafficRouter } from './trafficsplit/router.js';

export interface RoutersOptions {
  /** The field manager named in managedFields; default perch-controller. */
  fieldManager?: string;
}

export class Routers {
  private readonly trafficSplit: TrafficRouter;
  private readonly httpRoute: HttpRouteRouter;

  constructor(kc: KubeConfig, opts: RoutersOptions = {}) {
    this.trafficSplit = new TrafficRouter(kc, opts);
    this.httpRoute = new HttpRouteRouter(kc, opts);
  }

  for(target: RouteTarget): Router {
    switch (target.kind) {
      case 'TrafficSplit':
        return this.trafficSplit as Router;
      case 'HTTPRoute':
        return this.httpRoute as Router;
    }
  }
}
