/**
 * One preheat, live while PENDING (every 2 s): bytes and pieces per URL and host, every host that got each URL,
 * every one that failed and why, the log, and cancel.
 */
import { Alert, Anchor, Button, Card, Group, Loader, Stack, Table, Text } from "@mantine/core";
import { Link } from "wouter";
import type { JobView, TaskOutcome } from "@api/jobs";
import { useCancelJob, useJob, useMe } from "../lib/queries";
import { hostAddress } from "@common/host-label";
import { ErrorNote, JobStateBadge, PageTitle, Time } from "../ui/bits";
import { TableScroll } from "../ui/table-scroll";
import { JobProgressBar, UrlProgressList } from "../ui/preheat-progress";

function Outcomes({ title, rows, failed, clusters }: { title: string; rows: TaskOutcome[]; failed: boolean; clusters: JobView["scheduler_clusters"] }) {
  const clusterName = (id: number) => clusters.find((c) => c.id === id)?.name ?? (id ? String(id) : "—");
  return (
    <Card withBorder component="section" aria-label={title}>
      <Text fw={600}>
        {title} ({rows.length})
      </Text>
      {rows.length === 0 ? (
        <Text size="sm">None.</Text>
      ) : (
        <TableScroll label={`${title} table`}>
          <Table mt="xs" striped data-testid={failed ? "failure-tasks" : "success-tasks"}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Host</Table.Th>
                <Table.Th>Address</Table.Th>
                <Table.Th>Cluster</Table.Th>
                <Table.Th>URL</Table.Th>
                <Table.Th>Task ID</Table.Th>
                {failed && <Table.Th>Reason</Table.Th>}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {rows.map((o, i) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: one host may report the same task twice (retries); the row order is fixed
                <Table.Tr key={`${o.task_id}-${o.hostname}-${i}`}>
                  <Table.Td>{o.hostname || "—"}</Table.Td>
                  <Table.Td>{o.ip ? <code>{hostAddress(o)}</code> : "—"}</Table.Td>
                  <Table.Td>{clusterName(o.scheduler_cluster_id)}</Table.Td>
                  <Table.Td style={{ wordBreak: "break-all" }}>{o.url}</Table.Td>
                  <Table.Td style={{ wordBreak: "break-all" }}>
                    <code>{o.task_id || "—"}</code>
                  </Table.Td>
                  {failed && <Table.Td>{o.description}</Table.Td>}
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </TableScroll>
      )}
    </Card>
  );
}

function Args({ job }: { job: JobView }) {
  const a = job.args;
  if (!("type" in a)) return null; // not a preheat: its args are the task job's
  const rows: [string, string][] = [
    ["Type", a.type],
    ["URLs", [a.url, ...(a.urls ?? [])].join("\n")],
    ["Description", job.bio || "—"],
    ["Clusters", job.scheduler_clusters.map((c) => c.name).join(", ")],
    ["Scope", a.scope ?? "single_seed_peer"],
    ["Piece length", `${a.pieceLength} bytes`],
    ["Tag / application", `${a.tag || "—"} / ${a.application || "—"}`],
    ["Filtered query parameters", a.filteredQueryParams || "—"],
    ["Platform", a.platform || "—"],
    ["Headers", a.headers ? Object.keys(a.headers).join(", ") : "—"],
  ];
  if (a.ips) rows.push(["Hosts", a.ips.join(", ")]);
  if (a.count !== undefined) rows.push(["Count", String(a.count)]);
  if (a.percentage !== undefined) rows.push(["Percentage", `${a.percentage} %`]);
  if (a.concurrent_peer_count !== undefined) rows.push(["Hosts at once", String(a.concurrent_peer_count)]);
  if (a.timeout !== undefined) rows.push(["Timeout", `${a.timeout} s`]);
  return (
    <TableScroll label="Arguments table">
      <Table withTableBorder variant="vertical">
        <Table.Tbody>
          {rows.map(([k, v]) => (
            <Table.Tr key={k}>
              <Table.Th w={220}>{k}</Table.Th>
              <Table.Td style={{ whiteSpace: "pre-wrap", wordBreak: "break-all" }}>{v}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </TableScroll>
  );
}

export default function PreheatDetail({ id }: { id: number }) {
  const job = useJob(id);
  const cancel = useCancelJob();
  const me = useMe().data;
  if (job.isPending) return <Loader aria-label="Loading the preheat" />;
  if (!job.data) return <ErrorNote error={job.error} title={`Could not load preheat ${id}`} />;
  const j = job.data;
  const r = j.result;
  return (
    <Stack>
      <PageTitle
        actions={
          me?.role === "root" &&
          j.state === "PENDING" && (
            <Button color="red.9" onClick={() => cancel.mutate(j.id)} loading={cancel.isPending}>
              Cancel preheat
            </Button>
          )
        }
      >
        Preheat {j.id}
      </PageTitle>
      <Anchor component={Link} href="/preheats">
        Back to all preheats
      </Anchor>
      <ErrorNote error={cancel.error} />
      <Group>
        <JobStateBadge state={j.state} />
        <Text size="sm">
          created <Time iso={j.created_at} />, updated <Time iso={j.updated_at} />
        </Text>
        {j.state === "PENDING" && (
          <Text size="sm" aria-live="polite">
            (refreshing every 2 s)
          </Text>
        )}
      </Group>
      <JobProgressBar result={r} />
      {r?.error && (
        <Alert color="red.9" variant="outline" title="Why it failed" role="alert">
          {r.error}
        </Alert>
      )}
      <UrlProgressList tasks={r?.tasks ?? []} clusterName={(id) => j.scheduler_clusters.find((c) => c.id === id)?.name ?? String(id)} />
      <Outcomes title="Hosts that got it" rows={r?.success_tasks ?? []} failed={false} clusters={j.scheduler_clusters} />
      <Outcomes title="Hosts that failed" rows={r?.failure_tasks ?? []} failed={true} clusters={j.scheduler_clusters} />
      <Card withBorder component="section" aria-label="Log">
        <Text fw={600}>Log</Text>
        {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must take keyboard focus (axe scrollable-region-focusable) */}
        <pre className="log" data-testid="job-log" tabIndex={0}>
          {r?.log.length ? r.log.join("\n") : "Nothing logged yet."}
        </pre>
      </Card>
      <Card withBorder component="section" aria-label="Arguments">
        <Text fw={600} mb="xs">
          Arguments
        </Text>
        <Args job={j} />
        {r && r.urls.length > 0 && (
          <>
            <Text fw={600} mt="md">
              Resolved to {r.urls.length} URL(s)
            </Text>
            {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must take keyboard focus (axe scrollable-region-focusable) */}
            <pre className="log" tabIndex={0}>
              {r.urls.join("\n")}
            </pre>
          </>
        )}
      </Card>
    </Stack>
  );
}
