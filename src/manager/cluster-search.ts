/**
 * Which scheduler cluster a peer belongs to, from the clusters' scopes (the same
 * weights as Dragonfly's manager searcher, so a cluster layout written for Dragonfly
 * sorts peers the same way): CIDR 0.3, hostname 0.3, IDC 0.25, location 0.14,
 * default cluster 0.01. Clusters without an active scheduler are never chosen.
 */
import { BlockList, isIP } from "node:net";
import type { ClusterScopes } from "../api/clusters.js";

const WEIGHT = { cidr: 0.3, hostname: 0.3, idc: 0.25, location: 0.14, isDefault: 0.01 } as const;
/** Location paths are compared on at most this many `|`-separated elements. */
const MAX_LOCATION_ELEMENTS = 5;
const SEPARATOR = "|";

export interface SearchedHost {
  hostname: string;
  ip: string;
  idc: string;
  location: string;
}

export interface CandidateCluster {
  id: number;
  isDefault: boolean;
  scopes: ClusterScopes;
  /** Whether it has at least one active scheduler. */
  hasScheduler: boolean;
}

function cidrScore(ip: string, cidrs: string[]): number {
  const family = isIP(ip);
  if (!family) return 0;
  // An IPv4-mapped IPv6 address matches IPv4 ranges, as Dragonfly unmaps it.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const addr = mapped?.[1] ?? ip;
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [net, bits] = cidr.split("/");
    const type = isIP(net ?? "") === 6 ? "ipv6" : "ipv4";
    try {
      list.addSubnet(net ?? "", Number(bits), type);
    } catch {
      /* validated when stored; a hand-edited row is skipped */
    }
  }
  return list.check(addr, isIP(addr) === 6 ? "ipv6" : "ipv4") ? 1 : 0;
}

function hostnameScore(hostname: string, patterns: string[]): number {
  if (!hostname) return 0;
  for (const p of patterns) {
    try {
      if (new RegExp(p).test(hostname)) return 1;
    } catch {
      /* validated when stored */
    }
  }
  return 0;
}

function idcScore(idc: string, scope: string): number {
  if (!idc || !scope) return 0;
  const want = idc.toLowerCase();
  return scope.split(SEPARATOR).some((s) => s.toLowerCase() === want) ? 1 : 0;
}

function locationScore(location: string, scope: string): number {
  if (!location || !scope) return 0;
  if (location.toLowerCase() === scope.toLowerCase()) return 1;
  const a = location.split(SEPARATOR);
  const b = scope.split(SEPARATOR);
  const n = Math.min(a.length, b.length, MAX_LOCATION_ELEMENTS);
  let same = 0;
  while (same < n && a[same]?.toLowerCase() === b[same]?.toLowerCase()) same++;
  return same / MAX_LOCATION_ELEMENTS;
}

export function clusterScore(host: SearchedHost, c: CandidateCluster): number {
  return (
    WEIGHT.cidr * cidrScore(host.ip, c.scopes.cidrs) +
    WEIGHT.hostname * hostnameScore(host.hostname, c.scopes.hostnames) +
    WEIGHT.idc * idcScore(host.idc, c.scopes.idc) +
    WEIGHT.location * locationScore(host.location, c.scopes.location) +
    WEIGHT.isDefault * (c.isDefault ? 1 : 0)
  );
}

/** The best cluster for `host` (ties: the lower id), or undefined when no cluster has an active scheduler. */
export function bestCluster<C extends CandidateCluster>(host: SearchedHost, clusters: C[]): C | undefined {
  let best: { c: C; score: number } | undefined;
  for (const c of clusters) {
    if (!c.hasScheduler) continue;
    const score = clusterScore(host, c);
    if (!best || score > best.score || (score === best.score && c.id < best.c.id)) best = { c, score };
  }
  return best?.c;
}
