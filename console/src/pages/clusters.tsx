/** Scheduler clusters: list with their members' state; root creates and edits them. */
import { useState, type FormEvent } from "react";
import { Button, Checkbox, Modal, NumberInput, Stack, Table, Text, TextInput } from "@mantine/core";
import type { ClusterView } from "@api/manager";
import { ApiError } from "../lib/client";
import { useClusters, useCreateCluster, useMe, useUpdateCluster } from "../lib/queries";
import { ErrorNote, Form, PageTitle, Pager, Time } from "../ui/bits";

function ClusterForm({ cluster, onDone }: { cluster?: ClusterView; onDone: () => void }) {
  const [name, setName] = useState(cluster?.name ?? "");
  const [bio, setBio] = useState(cluster?.bio ?? "");
  const [isDefault, setDefault] = useState(cluster?.is_default ?? false);
  const [rate, setRate] = useState<string | number>(cluster?.config.job_rate_limit ?? "");
  const create = useCreateCluster();
  const update = useUpdateCluster();
  const error = create.error ?? update.error;
  const fields = error instanceof ApiError ? error.fields : {};
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = { name, bio, ...(isDefault ? { is_default: true } : {}), ...(rate !== "" ? { config: { job_rate_limit: Number(rate) } } : {}) };
    if (cluster) update.mutate({ id: cluster.id, body }, { onSuccess: onDone });
    else create.mutate(body, { onSuccess: onDone });
  };
  const shown = new Set(["name", "bio", "config.job_rate_limit", "is_default"]);
  const general = error && !Object.keys(fields).some((k) => shown.has(k)) ? error.message : undefined;
  return (
    <Form onSubmit={submit} label="Cluster">
      <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} error={fields.name} />
      <TextInput label="Description" value={bio} onChange={(e) => setBio(e.currentTarget.value)} error={fields.bio} />
      <NumberInput
        label="Job rate limit (jobs per second)"
        description="Preheats this cluster accepts per second; more get 429"
        hideControls
        allowDecimal={false}
        value={rate}
        onChange={setRate}
        error={fields["config.job_rate_limit"]}
      />
      <Checkbox
        label="Default cluster (schedulers and seed peers that name no cluster join it)"
        checked={isDefault}
        disabled={cluster?.is_default}
        onChange={(e) => setDefault(e.currentTarget.checked)}
        error={fields.is_default}
      />
      {general && (
        <Text c="red.9" role="alert" size="sm">
          {general}
        </Text>
      )}
      <Button type="submit" loading={create.isPending || update.isPending}>
        {cluster ? "Save cluster" : "Create cluster"}
      </Button>
    </Form>
  );
}

export default function Clusters() {
  const [page, setPage] = useState(1);
  const clusters = useClusters(page);
  const root = useMe().data?.role === "root";
  const [editing, setEditing] = useState<ClusterView | "new" | null>(null);
  const up = (ms: ClusterView["schedulers"]) => `${ms.filter((m) => m.state === "active").length} of ${ms.length} up`;
  return (
    <Stack>
      <PageTitle actions={root && <Button onClick={() => setEditing("new")}>Add cluster</Button>}>Clusters</PageTitle>
      <ErrorNote error={clusters.error} title="Could not load the clusters" />
      <Table striped>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Name</Table.Th>
            <Table.Th>Description</Table.Th>
            <Table.Th>Default</Table.Th>
            <Table.Th>Job rate limit</Table.Th>
            <Table.Th>Schedulers</Table.Th>
            <Table.Th>Seed peers</Table.Th>
            <Table.Th>Created</Table.Th>
            {root && <Table.Th>Actions</Table.Th>}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {clusters.data?.items.map((c) => (
            <Table.Tr key={c.id}>
              <Table.Td>{c.name}</Table.Td>
              <Table.Td>{c.bio || "—"}</Table.Td>
              <Table.Td>{c.is_default ? "yes" : "no"}</Table.Td>
              <Table.Td>{c.config.job_rate_limit}/s</Table.Td>
              <Table.Td>{up(c.schedulers)}</Table.Td>
              <Table.Td>{up(c.seed_peers)}</Table.Td>
              <Table.Td>
                <Time iso={c.created_at} />
              </Table.Td>
              {root && (
                <Table.Td>
                  <Button size="xs" variant="default" onClick={() => setEditing(c)} aria-label={`Edit cluster ${c.name}`}>
                    Edit
                  </Button>
                </Table.Td>
              )}
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      {clusters.data && <Pager page={page} lastPage={clusters.data.lastPage} total={clusters.data.total} what="clusters" onPage={setPage} />}
      <Modal
        opened={editing !== null}
        onClose={() => setEditing(null)}
        title={editing === "new" ? "Add cluster" : `Edit cluster ${editing?.name ?? ""}`}
        closeButtonProps={{ "aria-label": "Close" }}
      >
        {editing !== null && <ClusterForm cluster={editing === "new" ? undefined : editing} onDone={() => setEditing(null)} />}
      </Modal>
    </Stack>
  );
}
