/** Peers as their schedulers report them: labels, address, cache and traffic; paged, searched and filtered on the server. */
import { useState } from "react";
import { Badge, Group, NativeSelect, Stack, Table, Text, TextInput } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { formatBytes } from "@common/format-bytes";
import { usePeers, type PeersFilter } from "../lib/queries";
import { Ago, ErrorNote, PageTitle, Pager, UpDownBadge } from "../ui/bits";

export default function Peers() {
  const [page, setPage] = useState(1);
  const [search, setSearch] = useState("");
  const [labelText, setLabelText] = useState("");
  const [type, setType] = useState<"" | "normal" | "super">("");
  const [state, setState] = useState<"" | "active" | "inactive">("");
  const [q] = useDebouncedValue(search.trim(), 300);
  const [labels] = useDebouncedValue(labelText.trim(), 300);
  const filter: PeersFilter = { page, q: q || undefined, labels: labels || undefined, type: type || undefined, state: state || undefined };
  const peers = usePeers(filter);
  const reset =
    <T,>(set: (v: T) => void) =>
    (v: T) => (set(v), setPage(1));
  return (
    <Stack>
      <PageTitle>Peers</PageTitle>
      <Text size="sm">
        Every host the schedulers report, refreshed every 15 s: seed peers and peers, their labels, what they cache and what they moved. Uploaded, from the
        swarm and from origins count since each peer process started: they start again from zero when a peer restarts.
      </Text>
      <Group align="end">
        <TextInput label="Search by host name or IP" value={search} onChange={(e) => reset(setSearch)(e.currentTarget.value)} w={260} />
        <TextInput
          label="Labels (key=value, comma-separated)"
          placeholder="zone=a,kubernetes.io/arch=amd64"
          value={labelText}
          onChange={(e) => reset(setLabelText)(e.currentTarget.value)}
          w={300}
        />
        <NativeSelect
          label="Type"
          value={type}
          onChange={(e) => reset(setType)(e.currentTarget.value as typeof type)}
          data={[
            { value: "", label: "Any type" },
            { value: "normal", label: "Peer" },
            { value: "super", label: "Seed peer" },
          ]}
        />
        <NativeSelect
          label="State"
          value={state}
          onChange={(e) => reset(setState)(e.currentTarget.value as typeof state)}
          data={[
            { value: "", label: "Any state" },
            { value: "active", label: "Active" },
            { value: "inactive", label: "Inactive" },
          ]}
        />
      </Group>
      <ErrorNote error={peers.error} title="Could not load the peers" />
      {/* Thirteen columns: scroll sideways rather than squeeze the state and label badges to "…". */}
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take focus so keyboard users can scroll it (WCAG 2.1.1; axe scrollable-region-focusable) */}
      <section aria-label="Peers table" tabIndex={0} style={{ overflowX: "auto" }}>
        <Table striped data-testid="peers-table" miw={1400}>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Host</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>Type</Table.Th>
              <Table.Th>Address</Table.Th>
              <Table.Th>Labels</Table.Th>
              <Table.Th>Cached tasks</Table.Th>
              <Table.Th>Cached bytes</Table.Th>
              <Table.Th>Uploaded</Table.Th>
              <Table.Th>From the swarm</Table.Th>
              <Table.Th>From origins</Table.Th>
              <Table.Th>Free disk</Table.Th>
              <Table.Th>Cluster</Table.Th>
              <Table.Th>Last seen</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {peers.data?.items.map((p) => (
              <Table.Tr key={p.id}>
                <Table.Td>
                  {p.hostname}
                  <Text size="xs" c="dimmed">
                    {p.version && `kiln ${p.version}`}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <UpDownBadge up={p.state === "active"} />
                </Table.Td>
                <Table.Td>{p.type === "super" ? "Seed peer" : "Peer"}</Table.Td>
                <Table.Td>
                  {p.ip}:{p.port}
                  {p.proxy_port !== null && <Text size="xs">proxy :{p.proxy_port}</Text>}
                </Table.Td>
                <Table.Td>
                  <Group gap={4}>
                    {Object.entries(p.labels).map(([k, v]) => (
                      <Badge key={k} variant="outline" color="dark" radius="sm" tt="none">
                        {k}={v}
                      </Badge>
                    ))}
                  </Group>
                </Table.Td>
                <Table.Td>{p.task_count}</Table.Td>
                <Table.Td>{formatBytes(p.bytes_stored)}</Table.Td>
                <Table.Td>{formatBytes(p.uploaded_bytes)}</Table.Td>
                <Table.Td>{formatBytes(p.swarm_bytes)}</Table.Td>
                <Table.Td>{formatBytes(p.origin_bytes)}</Table.Td>
                <Table.Td>{formatBytes(p.free_disk_bytes)}</Table.Td>
                <Table.Td>{p.scheduler_cluster_id}</Table.Td>
                <Table.Td>
                  <Ago iso={p.last_seen_at} />
                </Table.Td>
              </Table.Tr>
            ))}
            {peers.data?.items.length === 0 && (
              <Table.Tr>
                <Table.Td colSpan={13}>No peer matches.</Table.Td>
              </Table.Tr>
            )}
          </Table.Tbody>
        </Table>
      </section>
      {peers.data && <Pager page={page} lastPage={peers.data.lastPage} total={peers.data.total} what="peers" onPage={setPage} />}
    </Stack>
  );
}
