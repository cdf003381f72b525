import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { bestCluster, clusterScore, type CandidateCluster } from "../../src/manager/cluster-search.js";
import { ClusterScopes } from "../../src/api/clusters.js";

const cluster = (id: number, scopes: Partial<ClusterScopes>, extra: Partial<CandidateCluster> = {}): CandidateCluster => ({
  id,
  isDefault: false,
  hasScheduler: true,
  scopes: ClusterScopes.parse(scopes),
  ...extra,
});
const host = { hostname: "node-1", ip: "10.1.2.3", idc: "", location: "" };

describe("choosing a peer's scheduler cluster by scopes", () => {
  it("prefers a CIDR or host-name match (0.3) over an IDC match (0.25) over a location match", () => {
    const byCidr = cluster(1, { cidrs: ["10.1.0.0/16"] });
    const byIdc = cluster(2, { idc: "a|b" });
    const byLocation = cluster(3, { location: "cn|hz" });
    const h = { ...host, idc: "b", location: "cn|hz" };
    assert.equal(bestCluster(h, [byIdc, byLocation, byCidr])?.id, 1);
    assert.equal(bestCluster(h, [byIdc, byLocation])?.id, 2);
    assert.equal(bestCluster({ ...h, hostname: "gpu-3" }, [byIdc, cluster(4, { hostnames: ["^gpu-\\d+$"] })])?.id, 4);
  });

  it("scores location element by element from the left, out of 5", () => {
    const c = cluster(1, { location: "cn|hz|zone-a" });
    assert.equal(clusterScore({ ...host, location: "cn|hz|zone-a" }, c).toFixed(3), "0.140");
    assert.equal(clusterScore({ ...host, location: "cn|hz|zone-b" }, c).toFixed(3), (0.14 * (2 / 5)).toFixed(3));
    assert.equal(clusterScore({ ...host, location: "us|hz" }, c), 0);
  });

  it("matches IDCs case-insensitively against a |-separated list, and IPv4-mapped addresses against IPv4 CIDRs", () => {
    assert.equal(clusterScore({ ...host, idc: "ZONE-B" }, cluster(1, { idc: "zone-a|zone-b" })), 0.25);
    assert.equal(clusterScore({ ...host, ip: "::ffff:10.1.2.3" }, cluster(1, { cidrs: ["10.0.0.0/8"] })), 0.3);
    assert.equal(clusterScore({ ...host, ip: "fd00::5" }, cluster(1, { cidrs: ["fd00::/8"] })), 0.3);
  });

  it("falls back to the default cluster, and never picks one without an active scheduler", () => {
    const def = cluster(1, {}, { isDefault: true });
    const other = cluster(2, {});
    assert.equal(bestCluster(host, [other, def])?.id, 1);
    const matchingButEmpty = cluster(3, { cidrs: ["10.0.0.0/8"] }, { hasScheduler: false });
    assert.equal(bestCluster(host, [def, matchingButEmpty])?.id, 1);
    assert.equal(bestCluster(host, [matchingButEmpty]), undefined);
  });

  it("breaks ties by the lower cluster id", () => {
    assert.equal(bestCluster(host, [cluster(7, {}), cluster(3, {})])?.id, 3);
  });
});
