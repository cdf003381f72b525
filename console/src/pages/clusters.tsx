/** Scheduler clusters: list with their members' state; root creates and edits them. */
import { useState, type FormEvent } from "react";
import { Button, Checkbox, Fieldset, Modal, NumberInput, Stack, Table, Text, TextInput, Textarea } from "@mantine/core";
import type { ClusterView } from "@api/clusters";
import { ApiError } from "../lib/client";
import { useClusters, useCreateCluster, useMe, useUpdateCluster } from "../lib/queries";
import { ErrorNote, Form, PageTitle, Pager, Time } from "../ui/bits";
import { TableScroll } from "../ui/table-scroll";

const lines = (text: string) =>
  text
    .split(/[\n,]/)
    .map((l) => l.trim())
    .filter(Boolean);

/** The API's message for a one-per-line field, naming the line for an item (`scopes.cidrs.1` is line 2). */
function linesError(fields: Record<string, string>, name: string): string | undefined {
  if (fields[name]) return fields[name];
  const item = Object.entries(fields).find(([k]) => k.startsWith(`${name}.`));
  return item && `line ${Number(item[0].slice(name.length + 1)) + 1}: ${item[1]}`;
}

function ClusterForm({ cluster, onDone }: { cluster?: ClusterView; onDone: () => void }) {
  const [name, setName] = useState(cluster?.name ?? "");
  const [bio, setBio] = useState(cluster?.bio ?? "");
  const [isDefault, setDefault] = useState(cluster?.is_default ?? false);
  const [rate, setRate] = useState<string | number>(cluster?.config.job_rate_limit ?? "");
  const [candidates, setCandidates] = useState<string | number>(cluster?.config.candidate_parent_limit ?? "");
  const [filter, setFilter] = useState<string | number>(cluster?.config.filter_parent_limit ?? "");
  const [idc, setIdc] = useState(cluster?.scopes.idc ?? "");
  const [location, setLocation] = useState(cluster?.scopes.location ?? "");
  const [cidrs, setCidrs] = useState(cluster?.scopes.cidrs.join("\n") ?? "");
  const [hostnames, setHostnames] = useState(cluster?.scopes.hostnames.join("\n") ?? "");
  const create = useCreateCluster();
  const update = useUpdateCluster();
  const error = create.error ?? update.error;
  const fields = error instanceof ApiError ? error.fields : {};
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const config = {
      ...(rate !== "" ? { job_rate_limit: Number(rate) } : {}),
      ...(candidates !== "" ? { candidate_parent_limit: Number(candidates) } : {}),
      ...(filter !== "" ? { filter_parent_limit: Number(filter) } : {}),
    };
    const body = {
      name,
      bio,
      ...(isDefault ? { is_default: true } : {}),
      config,
      scopes: { idc: idc.trim(), location: location.trim(), cidrs: lines(cidrs), hostnames: lines(hostnames) },
    };
    if (cluster) update.mutate({ id: cluster.id, body }, { onSuccess: onDone });
    else create.mutate(body, { onSuccess: onDone });
  };
  const shown = ["name", "bio", "config", "scopes", "is_default"];
  const general = error && !Object.keys(fields).some((k) => shown.some((f) => k === f || k.startsWith(`${f}.`))) ? error.message : undefined;
  const limit = (label: string, description: string, value: string | number, set: (v: string | number) => void, field: string) => (
    <NumberInput label={label} description={description} hideControls allowDecimal={false} value={value} onChange={set} error={fields[field]} />
  );
  return (
    <Form onSubmit={submit} label="Cluster">
      <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} error={fields.name} />
      <TextInput label="Description" value={bio} onChange={(e) => setBio(e.currentTarget.value)} error={fields.bio} />
      <Fieldset legend="Scopes: which peers belong to this cluster">
        <Stack gap="xs">
          <TextInput
            label="IDC"
            description="Data centres separated by |; a peer whose --idc is one of them matches"
            value={idc}
            onChange={(e) => setIdc(e.currentTarget.value)}
            error={fields["scopes.idc"]}
          />
          <TextInput
            label="Location"
            description="A path like region|zone; matched element by element from the left"
            value={location}
            onChange={(e) => setLocation(e.currentTarget.value)}
            error={fields["scopes.location"]}
          />
          <Textarea
            label="CIDRs"
            description="One per line, e.g. 10.0.0.0/8"
            autosize
            minRows={2}
            value={cidrs}
            onChange={(e) => setCidrs(e.currentTarget.value)}
            error={linesError(fields, "scopes.cidrs")}
          />
          <Textarea
            label="Host names"
            description="Regular expressions, one per line, e.g. ^gpu-node-[0-9]+$"
            autosize
            minRows={2}
            value={hostnames}
            onChange={(e) => setHostnames(e.currentTarget.value)}
            error={linesError(fields, "scopes.hostnames")}
          />
        </Stack>
      </Fieldset>
      <Fieldset legend="Limits">
        <Stack gap="xs">
          {limit("Job rate limit (jobs per second)", "Preheats this cluster accepts per second; more get 429", rate, setRate, "config.job_rate_limit")}
          {limit("Candidate parent limit (1–20)", "Parents a scheduler gives a peer per answer", candidates, setCandidates, "config.candidate_parent_limit")}
          {limit("Filter parent limit (10–1000)", "Candidate parents a scheduler samples per choice", filter, setFilter, "config.filter_parent_limit")}
        </Stack>
      </Fieldset>
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

/** A short line for the table: what the scopes match. */
function scopesText(s: ClusterView["scopes"]): string {
  const parts = [
    s.idc && `idc ${s.idc}`,
    s.location && `location ${s.location}`,
    s.cidrs.length > 0 && `CIDR ${s.cidrs.join(", ")}`,
    s.hostnames.length > 0 && `hosts ${s.hostnames.join(", ")}`,
  ].filter(Boolean);
  return parts.length ? parts.join("; ") : "—";
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
      <TableScroll label="Clusters table">
        <Table striped>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Description</Table.Th>
              <Table.Th>Default</Table.Th>
              <Table.Th>Scopes</Table.Th>
              <Table.Th>Limits</Table.Th>
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
                <Table.Td>{scopesText(c.scopes)}</Table.Td>
                <Table.Td>
                  {c.config.job_rate_limit} jobs/s, {c.config.candidate_parent_limit} parents of {c.config.filter_parent_limit} sampled
                </Table.Td>
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
      </TableScroll>
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
