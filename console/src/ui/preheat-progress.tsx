/** A preheat's live progress: bytes and pieces of every URL on every host asked, the rate, who is fetching. */
import { Badge, Card, Progress, Stack, Table, Text } from "@mantine/core";
import type { HostProgress, UrlProgress } from "@api/preheat";
import type { JobResult } from "@api/jobs";
import { formatBytes } from "@common/format-bytes";
import { hostAddress } from "@common/host-label";
import { GREEN } from "./bits";
import { TableScroll } from "./table-scroll";

type Progressish = Pick<UrlProgress, "bytes_done" | "bytes_total" | "pieces_done" | "pieces_total" | "rate_bps" | "hosts_fetching">;

/** "12.0 MiB of 24.0 MiB (50 %) · 3 of 6 pieces · 4.0 MiB/s · 1 host fetching". */
export function amounts(p: Progressish): string {
  const parts = [
    p.bytes_total !== null
      ? `${formatBytes(p.bytes_done)} of ${formatBytes(p.bytes_total)} (${percent(p.bytes_done, p.bytes_total)} %)`
      : `${formatBytes(p.bytes_done)}, size not known yet`,
  ];
  if (p.pieces_total !== null) parts.push(`${p.pieces_done} of ${p.pieces_total} pieces`);
  if (p.rate_bps > 0) parts.push(`${formatBytes(p.rate_bps)}/s`);
  if (p.hosts_fetching > 0) parts.push(`${p.hosts_fetching} host${p.hosts_fetching === 1 ? "" : "s"} fetching`);
  return parts.join(" · ");
}

const percent = (done: number, total: number) => (total > 0 ? Math.min(100, Math.floor((100 * done) / total)) : 100);

/** The job's bar: by bytes once every size is known, else by finished URL×cluster tasks. */
export function JobProgressBar({ result }: { result: JobResult | null }) {
  const p = result?.progress;
  const done = p ? p.succeeded + p.failed : 0;
  const byBytes = p?.bytes_total != null && p.bytes_done !== undefined;
  const value = !p ? 0 : byBytes ? percent(p.bytes_done ?? 0, p.bytes_total ?? 0) : p.total ? Math.floor((100 * done) / p.total) : 0;
  const tasks = p ? `${done} of ${p.total} URL×cluster tasks done: ${p.succeeded} succeeded, ${p.failed} failed` : "Not started yet";
  return (
    <div>
      <Text size="sm" id="progress-label">
        {tasks}
      </Text>
      {p?.bytes_done !== undefined && (
        <Text size="sm" data-testid="progress-bytes">
          {amounts({
            bytes_done: p.bytes_done,
            bytes_total: p.bytes_total ?? null,
            pieces_done: p.pieces_done ?? 0,
            pieces_total: p.pieces_total ?? null,
            rate_bps: p.rate_bps ?? 0,
            hosts_fetching: p.hosts_fetching ?? 0,
          })}
        </Text>
      )}
      <Progress.Root mt={4} size="lg">
        <Progress.Section value={value} color={p?.failed ? "red.9" : GREEN} aria-labelledby="progress-label" />
      </Progress.Root>
    </div>
  );
}

const HOST_STATE: Record<HostProgress["state"], { color: string; label: string }> = {
  queued: { color: "gray.7", label: "Queued" },
  fetching: { color: "blue.9", label: "Fetching" },
  succeeded: { color: GREEN, label: "Done" },
  failed: { color: "red.9", label: "Failed" },
};

function HostRows({ url }: { url: UrlProgress }) {
  if (url.hosts.length === 0) return <Text size="sm">No host asked yet.</Text>;
  return (
    <TableScroll label={`Hosts of ${url.url}`}>
      <Table striped>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Host</Table.Th>
            <Table.Th>Address</Table.Th>
            <Table.Th>State</Table.Th>
            <Table.Th>Done</Table.Th>
            <Table.Th>Rate</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {url.hosts.map((h) => (
            <Table.Tr key={`${h.hostname}-${h.ip}-${h.port ?? ""}`}>
              <Table.Td>
                {h.hostname}
                {h.host_type === "super" ? " (seed peer)" : ""}
              </Table.Td>
              <Table.Td>
                <code>{hostAddress(h)}</code>
              </Table.Td>
              <Table.Td>
                <Badge color={HOST_STATE[h.state].color} variant="filled" radius="sm">
                  {HOST_STATE[h.state].label}
                </Badge>
                {h.state === "fetching" && h.from_origin ? <Text size="xs">from the origin</Text> : null}
                {h.error ? <Text size="xs">{h.error}</Text> : null}
              </Table.Td>
              <Table.Td>
                {formatBytes(h.bytes_done)}
                {url.content_length !== null ? ` of ${formatBytes(url.content_length)}` : ""}
                {url.total_pieces !== null ? `, ${h.finished_pieces} of ${url.total_pieces} pieces` : ""}
              </Table.Td>
              <Table.Td>{h.rate_bps > 0 ? `${formatBytes(h.rate_bps)}/s` : "—"}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </TableScroll>
  );
}

/** One card per URL and cluster: its amounts and a row per host. */
export function UrlProgressList({ tasks, clusterName }: { tasks: UrlProgress[]; clusterName: (id: number) => string }) {
  if (tasks.length === 0) return null;
  return (
    <Card withBorder component="section" aria-label="Progress per URL">
      <Text fw={600}>Progress per URL ({tasks.length})</Text>
      <Stack gap="md" mt="xs" data-testid="url-progress">
        {tasks.map((u) => (
          <div key={`${u.url}-${u.scheduler_cluster_id}`}>
            <Text size="sm" style={{ wordBreak: "break-all" }}>
              <strong>{u.url}</strong> on cluster {clusterName(u.scheduler_cluster_id)}: {u.state}
            </Text>
            <Text size="sm">{amounts(u)}</Text>
            <Progress
              mt={4}
              value={u.bytes_total !== null ? percent(u.bytes_done, u.bytes_total) : 0}
              color={u.state === "failed" ? "red.9" : GREEN}
              aria-label={`Progress of ${u.url}`}
            />
            <HostRows url={u} />
          </div>
        ))}
      </Stack>
    </Card>
  );
}
