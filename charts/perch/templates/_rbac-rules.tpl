{{- /*
The controller's grants, the same for a ClusterRole or a Role: every verb here is one `perch controller`
sends, or one the OwnerReferencesPermissionEnforcement admission plugin checks for a request it sends
(test/e2e/helm-least-privilege proves each: by use, from the API server's audit log, and the
admission-checked ones by taking them away). Nothing else: no get (reads come from list+watch caches),
and no request ever deletes anything. The same as deploy/rbac.yaml's ClusterRole.
*/}}
{{- define "perch.rules" -}}
# Watch caches of Rollouts and MetricTemplates (templateRefs).
- apiGroups: [perch.dev]
  resources: [rollouts, metrictemplates]
  verbs: [list, watch]
# Rollout writes are patches: one-shot annotations removed, the perch.dev/traffic finalizer added and
# removed (a deleted Rollout is released by removing it).
- apiGroups: [perch.dev]
  resources: [rollouts]
  verbs: [patch]
# status: phase, weights, analysis, conditions.
- apiGroups: [perch.dev]
  resources: [rollouts/status]
  verbs: [patch]
# Never sent: a routing object Perch creates names its Rollout as owner with blockOwnerDeletion: true,
# which the OwnerReferencesPermissionEnforcement admission plugin (on in OpenShift, and in Perch's
# sandbox) allows only to who may update the owner's finalizers.
- apiGroups: [perch.dev]
  resources: [rollouts/finalizers]
  verbs: [update]
# Whether a Rollout's root, stable and canary Services exist (a cache, never a write).
- apiGroups: ['']
  resources: [services]
  verbs: [list, watch]
# SMI weights: created when missing, then patches with a precondition; watched to notice someone
# else's change; on deletion a JSON patch releases the split (ownerReference removed,
# perch.dev/released-from added).
- apiGroups: [split.smi-spec.io]
  resources: [trafficsplits]
  verbs: [list, watch, create, patch]
# The same for Gateway API HTTPRoutes (trafficRouting.gatewayAPI): patches of two weights only.
# Never the route's status: that is the mesh's or the Gateway's to write.
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [list, watch, create, patch]
# Never sent: OwnerReferencesPermissionEnforcement (on in OpenShift, and in Perch's sandbox) lets only
# who may delete an object change its ownerReferences, and releasing a routing object when its Rollout
# is deleted removes Perch's. Without these a deleted Rollout would wait on its finalizer forever there.
- apiGroups: [split.smi-spec.io]
  resources: [trafficsplits]
  verbs: [delete]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [delete]
# Events on Rollouts (kubectl describe); repeats bump `count` with a patch, as client-go's recorder does.
- apiGroups: ['']
  resources: [events]
  verbs: [create, patch]
{{- end }}
