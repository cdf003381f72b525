/**
 * Tasks: find a task by URL (with what its ID is computed from), by task ID, or every
 * layer of an image; see which peers hold it; delete it from every peer of every
 * cluster after typing DELETE. Each step is a job (get_task, get_image_distribution,
 * delete_task) followed live.
 */
import { useState, type FormEvent } from "react";
import { Alert, Button, Group, Modal, NumberInput, PasswordInput, SegmentedControl, Stack, Table, Text, TextInput } from "@mantine/core";
import type { JobView } from "@api/jobs";
import { formatBytes } from "@common/format-bytes";
import { ApiError } from "../lib/client";
import { useJob, useMe, useRunJob } from "../lib/queries";
import { ErrorNote, Form, JobStateBadge, PageTitle, Time } from "../ui/bits";
import { TableScroll } from "../ui/table-scroll";
import { sentence } from "../lib/field-message";
import { hostAddress, hostLabel } from "@common/host-label";

type Mode = "url" | "task_id" | "image";
const MiB = 1024 * 1024;

interface Query {
  mode: Mode;
  target: string;
  tag: string;
  application: string;
  filter: string;
  pieceLengthMiB: number | "";
  username: string;
  password: string;
  platform: string;
}

/** The job's `args`, as the API names them. */
function argsOf(q: Query): Record<string, unknown> {
  if (q.mode === "task_id") return { task_id: q.target.trim() };
  const a: Record<string, unknown> = { url: q.target.trim(), filtered_query_params: q.filter };
  if (q.tag) a.tag = q.tag;
  if (q.application) a.application = q.application;
  if (q.pieceLengthMiB !== "") a.piece_length = q.pieceLengthMiB * MiB;
  if (q.mode === "image") {
    if (q.username) a.username = q.username;
    if (q.password) a.password = q.password;
    if (q.platform) a.platform = q.platform;
  }
  return a;
}

/** Follows one job until it ends; shows its state while it runs. */
function useFollowedJob() {
  const [id, setId] = useState<number>();
  const job = useJob(id ?? 0, id !== undefined);
  return { job: id === undefined ? undefined : job.data, error: job.error, follow: setId };
}

function Holders({ job }: { job: JobView }) {
  const peers = job.result?.peers ?? [];
  return (
    <TableScroll label="Holders table">
      <Table striped data-testid="holders-table">
        <Table.Caption>{peers.length === 0 ? "No peer holds this task." : `${peers.length} host(s) hold this task or part of it.`}</Table.Caption>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Host</Table.Th>
            <Table.Th>Address</Table.Th>
            <Table.Th>Type</Table.Th>
            <Table.Th>State</Table.Th>
            <Table.Th>Pieces</Table.Th>
            <Table.Th>Size</Table.Th>
            <Table.Th>Cluster</Table.Th>
            <Table.Th>Since</Table.Th>
            <Table.Th>Last used</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {peers.map((p) => (
            <Table.Tr key={p.id}>
              <Table.Td>{p.hostname}</Table.Td>
              <Table.Td>
                <code>{hostAddress(p)}</code>
              </Table.Td>
              <Table.Td>{p.host_type === "super" ? "Seed peer" : "Peer"}</Table.Td>
              <Table.Td>{p.state === "finished" ? "✓ finished" : "⋯ downloading"}</Table.Td>
              <Table.Td>
                {p.finished_pieces} / {p.total_pieces ?? "?"}
              </Table.Td>
              <Table.Td>{p.content_length === null ? "?" : formatBytes(p.content_length)}</Table.Td>
              <Table.Td>{p.scheduler_cluster_id}</Table.Td>
              <Table.Td>
                <Time iso={p.created_at} />
              </Table.Td>
              <Table.Td>
                <Time iso={p.updated_at} />
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </TableScroll>
  );
}

function Distribution({ job }: { job: JobView }) {
  const image = job.result?.image;
  if (!image) return null;
  return (
    <TableScroll label="Distribution table">
      <Table striped data-testid="distribution-table">
        <Table.Caption>
          Manifest {image.manifest_digest}
          {image.platform ? ` (${image.platform})` : ""}: {image.layers.length} layer(s)
        </Table.Caption>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Layer</Table.Th>
            <Table.Th>Size</Table.Th>
            <Table.Th>Warm nodes</Table.Th>
            <Table.Th>Hosts holding it</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {image.layers.map((l) => {
            const warm = image.peers.filter((p) => p.layers.some((x) => x.digest === l.digest && x.state === "finished"));
            return (
              <Table.Tr key={l.digest}>
                <Table.Td>
                  <code>{l.digest.slice(0, 19)}</code>
                </Table.Td>
                <Table.Td>{formatBytes(l.size)}</Table.Td>
                <Table.Td>{warm.length}</Table.Td>
                <Table.Td>
                  {warm
                    .map((p) => hostLabel(p))
                    .sort()
                    .join(", ") || "none"}
                </Table.Td>
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
    </TableScroll>
  );
}

function Outcomes({ job }: { job: JobView }) {
  const rows = [...(job.result?.success_tasks ?? []).map((t) => ({ t, ok: true })), ...(job.result?.failure_tasks ?? []).map((t) => ({ t, ok: false }))];
  return (
    <TableScroll label="Deletion table">
      <Table striped data-testid="delete-table">
        <Table.Caption>{rows.length === 0 ? "No peer held the task." : "What each host answered."}</Table.Caption>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Host</Table.Th>
            <Table.Th>IP</Table.Th>
            <Table.Th>Result</Table.Th>
            <Table.Th>Detail</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {rows.map(({ t, ok }) => (
            <Table.Tr key={`${ok}-${t.scheduler_cluster_id}-${t.hostname}-${t.ip}-${t.description}`}>
              <Table.Td>{t.hostname || "—"}</Table.Td>
              <Table.Td>{t.ip ? <code>{hostAddress(t)}</code> : "—"}</Table.Td>
              <Table.Td>{ok ? "✓ deleted" : "✗ failed"}</Table.Td>
              <Table.Td>{t.description}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </TableScroll>
  );
}

function JobState({ job, what }: { job: JobView; what: string }) {
  return (
    <Group gap="xs">
      <Text>
        {what} (job {job.id}):
      </Text>
      <JobStateBadge state={job.state} />
      {job.state === "FAILURE" && job.result?.error && (
        <Text c="red.9" size="sm" role="alert">
          {job.result.error}
        </Text>
      )}
    </Group>
  );
}

export default function Tasks() {
  const root = useMe().data?.role === "root";
  const [q, setQ] = useState<Query>({
    mode: "url",
    target: "",
    tag: "",
    application: "",
    filter: "Expires&Signature",
    pieceLengthMiB: "",
    username: "",
    password: "",
    platform: "",
  });
  const set =
    <K extends keyof Query>(k: K) =>
    (v: Query[K]) =>
      setQ((old) => ({ ...old, [k]: v }));
  const run = useRunJob();
  const found = useFollowedJob();
  const deleted = useFollowedJob();
  const [asked, setAsked] = useState<Query>();
  const [confirming, setConfirming] = useState(false);
  const [typed, setTyped] = useState("");
  const fieldError = (f: string) => {
    const m = run.error instanceof ApiError ? run.error.fields[`args.${f}`] : undefined;
    return m ? sentence(m, f === "pieceLength" || f === "piece_length" ? "MiB" : undefined) : undefined;
  };

  const find = async (e: FormEvent) => {
    e.preventDefault();
    const job = await run.mutateAsync({ type: q.mode === "image" ? "get_image_distribution" : "get_task", args: argsOf(q) }).catch(() => undefined);
    if (!job) return;
    setAsked(q);
    found.follow(job.id);
    deleted.follow(undefined);
  };

  /** Deletes what was found: the task, or every layer of the image (one job per layer). */
  const remove = async () => {
    if (!asked) return;
    setConfirming(false);
    setTyped("");
    const bodies =
      asked.mode === "image"
        ? (found.job?.result?.image?.layers ?? []).map((l) => ({ type: "delete_task", args: { task_id: l.task_id } }))
        : [{ type: "delete_task", args: argsOf(asked) }];
    let last: JobView | undefined;
    for (const body of bodies) last = await run.mutateAsync(body).catch(() => undefined);
    if (last) deleted.follow(last.id);
  };

  const done = found.job && found.job.state !== "PENDING";
  const holds = (found.job?.result?.peers?.length ?? 0) > 0 || (found.job?.result?.image?.peers.length ?? 0) > 0;
  return (
    <Stack>
      <PageTitle>Tasks</PageTitle>
      <Text size="sm">
        A task is one file or layer as peers cache it. Find it by the URL it was pulled or preheated with (and what its ID is computed from), by its task ID, or
        every layer of an image; then delete it from every peer and seed peer.
      </Text>
      <Form onSubmit={find} maw={720} label="Find a task">
        <SegmentedControl
          aria-label="Find by"
          value={q.mode}
          onChange={(v) => set("mode")(v as Mode)}
          data={[
            { value: "url", label: "URL" },
            { value: "task_id", label: "Task ID" },
            { value: "image", label: "Image (every layer)" },
          ]}
        />
        <TextInput
          label={q.mode === "task_id" ? "Task ID" : q.mode === "image" ? "Image manifest URL" : "URL"}
          placeholder={q.mode === "image" ? "https://registry:5000/v2/team/app/manifests/v1" : q.mode === "url" ? "https://example.com/big.iso" : ""}
          required
          value={q.target}
          onChange={(e) => set("target")(e.currentTarget.value)}
          error={fieldError(q.mode === "task_id" ? "task_id" : "url")}
        />
        {q.mode !== "task_id" && (
          <Group grow>
            <TextInput label="Tag" value={q.tag} onChange={(e) => set("tag")(e.currentTarget.value)} error={fieldError("tag")} />
            <TextInput
              label="Application"
              value={q.application}
              onChange={(e) => set("application")(e.currentTarget.value)}
              error={fieldError("application")}
            />
            <TextInput
              label="Filtered query params"
              value={q.filter}
              onChange={(e) => set("filter")(e.currentTarget.value)}
              error={fieldError("filtered_query_params")}
            />
            <NumberInput
              label="Piece length (MiB, if it was explicit)"
              min={4}
              max={1024}
              value={q.pieceLengthMiB}
              onChange={(v) => set("pieceLengthMiB")(v === "" ? "" : Number(v))}
              error={fieldError("piece_length")}
            />
          </Group>
        )}
        {q.mode === "image" && (
          <Group grow>
            <TextInput label="Registry username" value={q.username} onChange={(e) => set("username")(e.currentTarget.value)} autoComplete="off" />
            <PasswordInput label="Registry password" value={q.password} onChange={(e) => set("password")(e.currentTarget.value)} autoComplete="off" />
            <TextInput
              label="Platform"
              placeholder="linux/amd64"
              value={q.platform}
              onChange={(e) => set("platform")(e.currentTarget.value)}
              error={fieldError("platform")}
            />
          </Group>
        )}
        <Group>
          <Button type="submit" loading={run.isPending || (found.job?.state === "PENDING" && !deleted.job)}>
            Find
          </Button>
        </Group>
      </Form>
      <ErrorNote error={run.error ?? found.error ?? deleted.error} />
      {found.job && <JobState job={found.job} what={found.job.type === "get_image_distribution" ? "Image distribution" : "Lookup"} />}
      {done && found.job?.type === "get_task" && <Holders job={found.job} />}
      {done && found.job?.type === "get_image_distribution" && <Distribution job={found.job} />}
      {done && holds && root && !deleted.job && (
        <Group>
          <Button color="red.9" onClick={() => setConfirming(true)}>
            Delete from every peer…
          </Button>
        </Group>
      )}
      {done && holds && !root && <Text size="sm">Only root can delete tasks (you are a guest: read-only).</Text>}
      {deleted.job && <JobState job={deleted.job} what="Delete" />}
      {deleted.job && deleted.job.state !== "PENDING" && <Outcomes job={deleted.job} />}
      <Modal opened={confirming} onClose={() => setConfirming(false)} title="Delete from every peer" closeButtonProps={{ "aria-label": "Close" }}>
        <Stack>
          <Alert color="red.9" variant="outline" title="This cannot be undone">
            Every peer and seed peer that holds {asked?.mode === "image" ? "a layer of this image" : "this task"} removes it; a download of it in progress
            fails. The next pull goes back to the origin.
          </Alert>
          <TextInput label="Type DELETE to confirm" value={typed} onChange={(e) => setTyped(e.currentTarget.value)} data-autofocus />
          <Group justify="end">
            <Button variant="default" onClick={() => setConfirming(false)}>
              Keep it
            </Button>
            <Button color="red.9" disabled={typed !== "DELETE"} onClick={() => void remove()}>
              Delete
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Stack>
  );
}
