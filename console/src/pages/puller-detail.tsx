/** One pull schedule: its images and, per image × node, warm / pulling / failed (with why) / not selected; run it now. */
import { useState } from "react";
import { Badge, Button, Group, Stack, Table, Text } from "@mantine/core";
import type { CellState } from "@api/puller";
import { hostAddress } from "@common/host-label";
import { useMe, usePullSchedule, useRunPullSchedule } from "../lib/queries";
import { ErrorNote, GREEN, PageTitle, Time } from "../ui/bits";
import { TableScroll } from "../ui/table-scroll";
import { ScheduleForm } from "./puller-list";

/** Word and symbol for each state, not colour alone. */
const CELL: Record<CellState, { label: string; sign: string; color: string }> = {
  warm: { label: "warm", sign: "✓", color: GREEN },
  pulling: { label: "pulling", sign: "⋯", color: "blue.9" },
  failed: { label: "failed", sign: "✗", color: "red.9" },
  not_selected: { label: "not selected", sign: "–", color: "gray.7" },
};

/** A reason shared by several cells (e.g. no container runtime on the node) is said once, under the matrix, as a numbered note. */
function repeatedReasons(cells: { reason: string | null }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const c of cells) if (c.reason) counts.set(c.reason, (counts.get(c.reason) ?? 0) + 1);
  const notes = new Map<string, number>();
  for (const [reason, n] of counts) if (n > 1) notes.set(reason, notes.size + 1);
  return notes;
}

export default function PullDetail({ id }: { id: number }) {
  const root = useMe().data?.role === "root";
  const pull = usePullSchedule(id);
  const run = useRunPullSchedule();
  const s = pull.data;
  const status = s?.status;
  const [editing, setEditing] = useState(false);
  const notes = repeatedReasons(status?.cells ?? []);
  return (
    <Stack>
      <PageTitle
        actions={
          root && s ? (
            <Group>
              <Button variant="default" onClick={() => setEditing((e) => !e)}>
                {editing ? "Close the form" : "Edit"}
              </Button>
              <Button onClick={() => run.mutate(s.id)} loading={run.isPending || s.state === "running"}>
                Run now
              </Button>
            </Group>
          ) : undefined
        }
      >
        {s ? `Pull schedule ${s.name}` : "Pull schedule"}
      </PageTitle>
      <ErrorNote error={pull.error ?? run.error} />
      {editing && s && <ScheduleForm schedule={s} onSaved={() => setEditing(false)} />}
      {s && (
        <Text size="sm">
          {s.images.length} image(s) every {s.cron ?? `${s.interval_hours} h`} on{" "}
          {Object.entries(s.node_selector)
            .map(([k, v]) => `${k}=${v}`)
            .join(", ") || "every peer"}
          {s.has_credentials ? "; registry credentials stored (sealed)" : ""}. {s.state === "running" ? "Running now." : ""} Last run:{" "}
          {s.last_run_at ? <Time iso={s.last_run_at} /> : "never"}; next: {s.next_run_at ? <Time iso={s.next_run_at} /> : "—"}.
        </Text>
      )}
      {s && !status && <Text>Not run yet.</Text>}
      {status && (
        <TableScroll label="Image and node matrix" wide>
          <Table striped withColumnBorders data-testid="pull-matrix">
            <Table.Caption>Each image on each node, as the last run found it (hover a cell for when).</Table.Caption>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Image</Table.Th>
                {status.nodes.map((n) => (
                  <Table.Th key={n.host_id}>
                    {n.hostname}
                    <Text size="xs">
                      <code>{hostAddress(n)}</code>
                    </Text>
                    <Text size="xs">{n.selected ? "selected" : "not selected"}</Text>
                  </Table.Th>
                ))}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {status.images.map((img) => (
                <Table.Tr key={img.name}>
                  <Table.Th scope="row">
                    {img.name}
                    <Text size="xs">{img.image}</Text>
                    <Text size="xs" c={img.error ? "red.9" : undefined}>
                      {img.error ?? img.digest?.slice(0, 19)}
                    </Text>
                  </Table.Th>
                  {status.nodes.map((n) => {
                    const c = status.cells.find((x) => x.image === img.name && x.host_id === n.host_id);
                    if (!c) return <Table.Td key={n.host_id}>—</Table.Td>;
                    const look = CELL[c.state];
                    return (
                      <Table.Td key={n.host_id} title={`checked ${c.checked_at}`} data-cell={`${img.name}@${n.hostname}`}>
                        {c.state === "not_selected" ? (
                          <Text size="sm">
                            {look.sign} {look.label}
                          </Text>
                        ) : (
                          <Badge color={look.color} variant="filled" radius="sm">
                            <span aria-hidden="true">{look.sign} </span>
                            {look.label}
                          </Badge>
                        )}
                        {c.reason && (notes.has(c.reason) ? <Text size="xs">see note {notes.get(c.reason)}</Text> : <Text size="xs">{c.reason}</Text>)}
                      </Table.Td>
                    );
                  })}
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </TableScroll>
      )}
      {notes.size > 0 && (
        <section aria-label="Notes on the matrix">
          {[...notes].map(([reason, n]) => (
            <Text size="sm" key={n}>
              Note {n} ({status?.cells.filter((c) => c.reason === reason).length} cells): {reason}
            </Text>
          ))}
        </section>
      )}
    </Stack>
  );
}
