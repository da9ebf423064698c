// Package operator is keso's in-cluster upgrade controller. It moves the
// nodes an OSVersion selects to the OSVersion's version, a few at a time:
// cordon, drain through the Eviction API, run `keso upgrade` in a Job pinned
// to the node, wait for the node to come back Ready on the new version,
// uncordon, next.
//
// Decide, then do: plan.go, window.go, drain.go and job.go are pure (which
// nodes are eligible, which start next, what the status says, which pods to
// evict, what the Job looks like) and unit-tested; controller.go applies
// their decisions through the API with wrangler's level-triggered handlers.
//
// All rollout state lives in the API: a node's progress is the JSON claim in
// its keso.io/upgrade annotation, written before any other side effect, and
// the Job's name is derived from node and version. A controller that is
// killed and restarted reads the claims and carries on without upgrading a
// node twice. A rollout is halted while a node carries a Failed claim for
// the current spec generation and resume token; editing the spec or setting
// the keso.io/resume annotation to a new value resumes it.
package operator
