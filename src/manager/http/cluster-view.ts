/** Scheduler clusters with their members, as the API shows them. */
import type { ClusterView } from "../../api/clusters.js";
import type { MemberView } from "../../api/members.js";
import type { ClusterRow, MemberRow } from "../db/schema.js";
import type { Store } from "../store.js";
import { readClusterConfig, readClusterScopes } from "../db/clusters.js";
import { showTime } from "../time.js";

export function memberView(m: MemberRow, memberTimeoutMs: number, now = Date.now()): MemberView {
  const fresh = Date.parse(m.last_keepalive_at) >= now - memberTimeoutMs;
  return {
    id: m.id,
    created_at: showTime(m.created_at),
    updated_at: showTime(m.updated_at),
    hostname: m.hostname,
    ip: m.ip,
    port: m.port,
    url: m.url,
    type: m.type,
    state: m.state === "active" && fresh ? "active" : "inactive",
    last_keepalive_at: showTime(m.last_keepalive_at),
    scheduler_cluster_id: m.scheduler_cluster_id,
  };
}

export async function clusterViews(store: Store, rows: ClusterRow[], memberTimeoutMs: number): Promise<ClusterView[]> {
  const ids = rows.map((r) => r.id);
  const [schedulers, seedPeers] = await Promise.all([store.schedulers.byCluster(ids), store.seedPeers.byCluster(ids)]);
  return rows.map((c) => ({
    id: c.id,
    created_at: showTime(c.created_at),
    updated_at: showTime(c.updated_at),
    name: c.name,
    bio: c.bio,
    config: readClusterConfig(c),
    scopes: readClusterScopes(c),
    is_default: c.is_default === 1,
    schedulers: schedulers.filter((s) => s.scheduler_cluster_id === c.id).map((s) => memberView(s, memberTimeoutMs)),
    seed_peers: seedPeers.filter((s) => s.scheduler_cluster_id === c.id).map((s) => memberView(s, memberTimeoutMs)),
  }));
}
