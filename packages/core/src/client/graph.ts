import { type DeferJobsArgs, DependencyCycleError, InvalidArgumentError, type Job } from '@skiplock/schema'

import { checkParentId, type DeferOptions } from './defer.ts'
import type { Task } from './define-task.ts'

/** One job of a graph passed to `deferGraph`. */
export interface GraphNode<Payload = any> extends Omit<DeferOptions<Payload>, 'tx' | 'dependsOn' | 'waitForRoom' | 'onQueueingLockConflict'> {
  task: Task<Payload>
  payload: Payload
  /** The keys of other nodes of the graph, or jobs that exist (a `Job`, or `{ id }`), that must succeed first. */
  dependsOn?: readonly (string | Pick<Job, 'id'>)[]
}

/**
 * Orders a graph's keys so that every node comes after the nodes it depends on (parents before children,
 * as `defer_jobs` requires), keeping the given order where the graph allows.
 * @throws {InvalidArgumentError} when a node depends on a key the graph lacks.
 * @throws {DependencyCycleError} naming the keys of a cycle, before anything is written.
 */
export function orderGraph(nodes: Readonly<Record<string, GraphNode>>): string[] {
  const state = new Map<string, 'visiting' | 'done'>()
  const ordered: string[] = []
  const path: string[] = []
  const visit = (key: string): void => {
    if (state.get(key) === 'done') return
    if (state.get(key) === 'visiting') throw new DependencyCycleError({ cycle: [...path.slice(path.indexOf(key)), key] })
    state.set(key, 'visiting')
    path.push(key)
    for (const parent of nodes[key]!.dependsOn ?? []) {
      if (typeof parent !== 'string') continue
      if (!Object.hasOwn(nodes, parent)) {
        throw new InvalidArgumentError({ argument: 'dependsOn', reason: `${JSON.stringify(key)} depends on ${JSON.stringify(parent)}, which is not a key of the graph` })
      }
      visit(parent)
    }
    path.pop()
    state.set(key, 'done')
    ordered.push(key)
  }
  for (const key of Object.keys(nodes)) visit(key)
  return ordered
}

/** The `defer_jobs` arguments of a graph: each node's own, as columns, plus the edges between them. */
export function joinGraphArgs(keys: readonly string[], nodes: Readonly<Record<string, GraphNode>>, argsByKey: ReadonlyMap<string, DeferJobsArgs>): DeferJobsArgs {
  const positions = new Map(keys.map((key, index) => [key, index + 1]))
  const perJob = keys.map((key) => argsByKey.get(key)!)
  const column = <Name extends keyof DeferJobsArgs>(name: Name) =>
    perJob.every((args) => args[name] === undefined) ? undefined : perJob.map((args) => (args[name] as readonly unknown[] | undefined)?.[0] ?? null)
  const edges = keys.flatMap((key, index) =>
    (nodes[key]!.dependsOn ?? []).map((parent) =>
      typeof parent === 'string'
        ? { child: index + 1, parentPosition: positions.get(parent)!, parentId: null }
        : { child: index + 1, parentPosition: null, parentId: checkParentId(parent?.id) },
    ),
  )
  return {
    taskNames: perJob.map((args) => args.taskNames[0]!),
    payloads: column('payloads') as DeferJobsArgs['payloads'],
    queueNames: column('queueNames') as DeferJobsArgs['queueNames'],
    priorities: column('priorities') as DeferJobsArgs['priorities'],
    runAts: column('runAts') as DeferJobsArgs['runAts'],
    maxAttempts: column('maxAttempts') as DeferJobsArgs['maxAttempts'],
    locks: column('locks') as DeferJobsArgs['locks'],
    queueingLocks: column('queueingLocks') as DeferJobsArgs['queueingLocks'],
    attributes: column('attributes') as DeferJobsArgs['attributes'],
    onParentFailures: column('onParentFailures') as DeferJobsArgs['onParentFailures'],
    maxPayloadBytes: perJob[0]?.maxPayloadBytes,
    dependencyChildPositions: edges.map((edge) => edge.child),
    dependencyParentPositions: edges.map((edge) => edge.parentPosition),
    dependencyParentIds: edges.map((edge) => edge.parentId),
  }
}
