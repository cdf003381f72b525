/** Overview: is every component up, how are the preheats doing, and how much the swarm saves the origins. */
import { Badge, Card, Group, SimpleGrid, Stack, Table, Text } from "@mantine/core";
import { Link } from "wouter";
import { useAllClusters, useJobCounts, usePeerCounts } from "../lib/queries";
import { useConnectivity } from "../lib/connectivity";
import { TrafficChart } from "../ui/traffic-chart";
import { ErrorNote, JobStateBadge, PageTitle, UpDownBadge } from "../ui/bits";
import { TableScroll } from "../ui/table-scroll";

/**
 * Up and down counts. Not known (nothing loaded): no badges at all. Stale (the manager
 * stopped answering): the last counts, grey, said to be the last known ones.
 */
function Count({ title, up, down, href, known, stale }: { title: string; up: number; down: number; href: string; known: boolean; stale: boolean }) {
  return (
    <Card withBorder component="section" aria-label={title}>
      <Text fw={600}>{title}</Text>
      {!known ? (
        <Text mt="xs" size="sm">
          Not known: could not load.
        </Text>
      ) : (
        <Group mt="xs" gap="md">
          <Text size="xl" fw={700}>
            {up}
          </Text>
          {stale ? <Badge color="gray.7">last known up</Badge> : <UpDownBadge up={true} upLabel="up" />}
          <Text size="xl" fw={700}>
            {down}
          </Text>
          {stale ? <Badge color="gray.7">last known down</Badge> : <UpDownBadge up={false} downLabel="down" />}
        </Group>
      )}
      <Link href={href}>See {title.toLowerCase()}</Link>
    </Card>
  );
}

export default function Overview() {
  const clusters = useAllClusters();
  const counts = useJobCounts();
  const peers = usePeerCounts();
  const stale = !useConnectivity().reachable;
  const all = clusters.data?.items ?? [];
  const members = (k: "schedulers" | "seed_peers") => all.flatMap((c) => c[k]);
  const up = (k: "schedulers" | "seed_peers") => members(k).filter((m) => m.state === "active").length;
  return (
    <Stack>
      <PageTitle>Overview</PageTitle>
      {/* Unreachable: the shell's banner says it once; other errors are this page's own. */}
      {!stale && <ErrorNote error={clusters.error ?? counts.error} title="Could not load" />}
      <SimpleGrid cols={{ base: 1, sm: 4 }}>
        <Card withBorder component="section" aria-label="Clusters">
          <Text fw={600}>Clusters</Text>
          <Text size="xl" fw={700} mt="xs">
            {clusters.data?.total ?? "…"}
          </Text>
          <Link href="/clusters">See clusters</Link>
        </Card>
        <Count
          title="Schedulers"
          up={up("schedulers")}
          down={members("schedulers").length - up("schedulers")}
          href="/members"
          known={clusters.data !== undefined}
          stale={stale}
        />
        <Count
          title="Seed peers"
          up={up("seed_peers")}
          down={members("seed_peers").length - up("seed_peers")}
          href="/members"
          known={clusters.data !== undefined}
          stale={stale}
        />
        <Count title="Peers" up={peers.data?.active ?? 0} down={peers.data?.inactive ?? 0} href="/peers" known={peers.data !== undefined} stale={stale} />
      </SimpleGrid>
      <Card withBorder component="section" aria-label="Preheats">
        <Text fw={600}>Preheats</Text>
        <TableScroll label="Preheat counts table">
          <Table mt="xs" maw={420}>
            <Table.Tbody>
              {(["PENDING", "SUCCESS", "FAILURE"] as const).map((s) => (
                <Table.Tr key={s}>
                  <Table.Td>
                    <JobStateBadge state={s} />
                  </Table.Td>
                  <Table.Td>
                    <Link href={`/preheats?state=${s}`}>{counts.data?.[s] ?? "…"} jobs</Link>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </TableScroll>
      </Card>
      <Card withBorder component="section" aria-label="Clusters and their components">
        <Text fw={600}>Clusters and their components</Text>
        <TableScroll label="Clusters and components table">
          <Table mt="xs" striped>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Cluster</Table.Th>
                <Table.Th>Schedulers up</Table.Th>
                <Table.Th>Seed peers up</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {all.map((c) => (
                <Table.Tr key={c.id}>
                  <Table.Td>
                    {c.name}
                    {c.is_default ? " (default)" : ""}
                  </Table.Td>
                  <Table.Td>
                    {c.schedulers.filter((s) => s.state === "active").length} of {c.schedulers.length}
                  </Table.Td>
                  <Table.Td>
                    {c.seed_peers.filter((s) => s.state === "active").length} of {c.seed_peers.length}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </TableScroll>
      </Card>
      <TrafficChart />
    </Stack>
  );
}
