/** A peer joins a task: a task that failed or lost its copies starts over, a peer holding the whole task is adopted as a parent. */
import { KilnError } from "../common/errors.js";
import { pieceCount } from "../common/piece.js";
import type { RegisterPeer, RegisterPeerReply } from "../api/scheduler.js";
import type { Peer } from "./resource/peer.js";
import type { Resource } from "./resource/resource.js";
import type { Task } from "./resource/task.js";
import type { RoleAssigner } from "./scheduling/roles.js";
import type { Scheduling } from "./scheduling/scheduling.js";

type Completed = NonNullable<RegisterPeer["completed"]>;
type Resumed = NonNullable<RegisterPeer["resumed"]>;

export class Registration {
  constructor(
    private readonly resource: Resource,
    private readonly roles: RoleAssigner,
    private readonly scheduling: Scheduling,
    private readonly opts: { parentsPerSchedule: number; seedTriggerWaitMs: number },
  ) {}

  /** Answered like a schedule call, with every digest known so far. */
  register(req: RegisterPeer): RegisterPeerReply {
    const host = this.resource.hosts.live(req.hostId);
    const task = this.resource.tasks.forDownload(req.download);
    task.spec = req.download;
    if (task.peers.has(req.peerId)) throw new KilnError("CONFLICT", `peer ${req.peerId} is already registered`);
    if (req.completed) checkCompleted(task, req.completed);
    if (req.resumed) checkResumed(task, req.resumed);
    const restarted = task.state === "failed" || (task.state === "succeeded" && !task.fullyAvailable());
    if (restarted) task.restart();
    const peer = task.join(req.peerId, host);
    if (req.completed) adoptCompleted(task, peer, req.completed);
    else if (req.resumed) adoptResumed(task, peer, req.resumed, this.opts.seedTriggerWaitMs);
    else this.roles.assign(task, peer);
    // Any peer is a candidate parent (one with nothing yet passes pieces on as they land), but only for polls that
    // ask for parents: waking every poll on each join made each peer's polls grow with the swarm.
    if (restarted) task.touch();
    else task.holderAppeared();
    return { taskId: task.id, ...this.scheduling.reply(peer, this.opts.parentsPerSchedule, task.digests.all()) };
  }
}

/** A peer's claim to hold a whole task must agree with everything the task already knows. */
function checkCompleted(task: Task, c: Completed): void {
  task.checkLayout(c);
  const total = pieceCount(c.contentLength, c.pieceLength);
  const numbers = new Set(c.pieces.map((p) => p.number));
  if (numbers.size !== total || c.pieces.some((p) => p.number >= total)) {
    throw new KilnError("BAD_REQUEST", `a completed task must list each of its ${total} pieces once`);
  }
  for (const p of c.pieces) {
    const canonical = task.digests.get(p.number);
    if (canonical && canonical.digest !== p.digest) {
      throw new KilnError("CONFLICT", `piece ${p.number} digest ${p.digest} differs from the task's ${canonical.digest}`);
    }
  }
}

/** A download that resumes after a scheduler restart must agree with what the task knows again. */
function checkResumed(task: Task, r: Resumed): void {
  task.checkLayout({ contentLength: r.contentLength, ...(r.pieceLength !== null ? { pieceLength: r.pieceLength } : {}) });
  if (r.fromOrigin && task.source) throw new KilnError("CONFLICT", `another peer (${task.source.id}) already fetches task ${task.id} from the origin`);
  for (const p of r.pieces) {
    const canonical = task.digests.get(p.number);
    if (canonical && canonical.digest !== p.digest) {
      throw new KilnError("CONFLICT", `piece ${p.number} digest ${p.digest} differs from the task's ${canonical.digest}`);
    }
  }
}

/**
 * The peer goes on as it was: the pieces it verified are held (and their digests
 * canonical, as they came from the origin fetch before the restart), and the origin
 * fetcher keeps its role so nobody else starts the origin fetch again.
 */
function adoptResumed(task: Task, peer: Peer, r: Resumed, seedWaitMs: number): void {
  task.setLayout({ contentLength: r.contentLength, ...(r.pieceLength !== null ? { pieceLength: r.pieceLength } : {}) });
  if (r.fromOrigin && r.validator) task.validator ??= r.validator;
  if (r.access) task.access ??= r.access;
  for (const p of r.pieces) {
    task.addDigest(p, r.fromOrigin);
    peer.addPiece(p.number);
  }
  peer.to(r.fromOrigin ? "back_to_source" : "running");
  if (r.fromOrigin) task.originFetchStarted();
  else task.awaitResumedSource(seedWaitMs);
}

/** The peer verified every piece when it downloaded them; it becomes a parent holding all of them. */
function adoptCompleted(task: Task, peer: Peer, c: Completed): void {
  task.setLayout(c);
  if (c.access) task.access ??= c.access;
  for (const p of c.pieces) {
    task.addDigest(p, false);
    peer.addPiece(p.number);
  }
  peer.to("running");
  peer.to("succeeded");
  task.succeeded();
}
