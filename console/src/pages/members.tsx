/** Schedulers and seed peers: live state, address, ports, tasks per scheduler, last keepalive; paged and searched on the server. */
import { useState } from "react";
import { Group, NativeSelect, Stack, Table, TextInput } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { useAllClusters, useMembers, type MemberKind } from "../lib/queries";
import { Ago, ErrorNote, PageTitle, Pager, Time, UpDownBadge } from "../ui/bits";
import { TableScroll } from "../ui/table-scroll";

function MemberTable({ kind, title }: { kind: MemberKind; title: string }) {
  const [page, setPage] = useState(1);
  const [search, setSearch] = useState("");
  const [state, setState] = useState<"" | "active" | "inactive">("");
  const [hostname] = useDebouncedValue(search.trim(), 300);
  const members = useMembers(kind, { page, hostname: hostname || undefined, state: state || undefined });
  const clusters = useAllClusters().data?.items;
  /** The cluster's name (its ID until the clusters have loaded). */
  const clusterName = (id: number) => clusters?.find((c) => c.id === id)?.name ?? `#${id}`;
  const id = `${kind}-title`;
  return (
    <section aria-labelledby={id}>
      <h2 id={id} style={{ fontSize: "1.2rem" }}>
        {title}
      </h2>
      <Group align="end" mb="xs">
        <TextInput
          label={`Search ${title.toLowerCase()} by host name or IP`}
          value={search}
          onChange={(e) => (setSearch(e.currentTarget.value), setPage(1))}
          w={320}
        />
        <NativeSelect
          label="State"
          value={state}
          onChange={(e) => (setState(e.currentTarget.value as typeof state), setPage(1))}
          data={[
            { value: "", label: "Any state" },
            { value: "active", label: "Active" },
            { value: "inactive", label: "Inactive" },
          ]}
        />
      </Group>
      <ErrorNote error={members.error} title={`Could not load the ${title.toLowerCase()}`} />
      <TableScroll label={`${kind === "schedulers" ? "Schedulers" : "Seed peers"} table`}>
        <Table striped data-testid={`${kind}-table`}>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Host</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>IP</Table.Th>
              <Table.Th>{kind === "schedulers" ? "API port" : "Upload port"}</Table.Th>
              <Table.Th>{kind === "schedulers" ? "URL" : "Type"}</Table.Th>
              <Table.Th>Cluster</Table.Th>
              {kind === "schedulers" && <Table.Th>Tasks</Table.Th>}
              <Table.Th>Last keepalive</Table.Th>
              <Table.Th>Registered</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {members.data?.items.map((m) => (
              <Table.Tr key={m.id}>
                <Table.Td>{m.hostname}</Table.Td>
                <Table.Td>
                  <UpDownBadge up={m.state === "active"} />
                </Table.Td>
                <Table.Td>{m.ip}</Table.Td>
                <Table.Td>{m.port}</Table.Td>
                <Table.Td>{kind === "schedulers" ? m.url : m.type}</Table.Td>
                <Table.Td>{clusterName(m.scheduler_cluster_id)}</Table.Td>
                {kind === "schedulers" && (
                  <Table.Td title="tasks this scheduler holds (each task belongs to one scheduler of its cluster)">{m.tasks ?? "—"}</Table.Td>
                )}
                <Table.Td>
                  <Ago iso={m.last_keepalive_at} />
                </Table.Td>
                <Table.Td>
                  <Time iso={m.created_at} />
                </Table.Td>
              </Table.Tr>
            ))}
            {members.data?.items.length === 0 && (
              <Table.Tr>
                <Table.Td colSpan={kind === "schedulers" ? 9 : 8}>None.</Table.Td>
              </Table.Tr>
            )}
          </Table.Tbody>
        </Table>
      </TableScroll>
      {members.data && <Pager page={page} lastPage={members.data.lastPage} total={members.data.total} what={title.toLowerCase()} onPage={setPage} />}
    </section>
  );
}

export default function Members() {
  return (
    <Stack>
      <PageTitle>Schedulers and seed peers</PageTitle>
      <MemberTable kind="schedulers" title="Schedulers" />
      <MemberTable kind="seed-peers" title="Seed peers" />
    </Stack>
  );
}
