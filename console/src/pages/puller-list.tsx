/** Pull schedules: image lists kept warm on the peers a node selector picks; root adds them. */
import { useState, type FormEvent } from "react";
import { MIN_PULL_INTERVAL_MS, type PullScheduleView } from "@api/puller";
import { Button, Group, NumberInput, PasswordInput, Stack, Table, Text, TextInput, Textarea } from "@mantine/core";
import { Link, useLocation } from "wouter";
import { ApiError } from "../lib/client";
import { useCreatePullSchedule, useMe, usePullSchedules, useUpdatePullSchedule } from "../lib/queries";
import { ErrorNote, Form, PageTitle, Pager, Time } from "../ui/bits";
import { TableScroll } from "../ui/table-scroll";
import { sentence } from "../lib/field-message";

/** `zone=a, arch=amd64` → { zone: "a", arch: "amd64" } (the API says which label is wrong). */
function selectorOf(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(/[,\n]/)) {
    const p = pair.trim();
    if (!p) continue;
    const i = p.indexOf("=");
    out[i < 0 ? p : p.slice(0, i).trim()] = i < 0 ? "" : p.slice(i + 1).trim();
  }
  return out;
}

/** Adds a schedule, or edits `schedule` (credentials left empty keep the stored ones). */
export function ScheduleForm({ schedule, onSaved }: { schedule?: PullScheduleView; onSaved?: () => void }) {
  const [, navigate] = useLocation();
  const [name, setName] = useState(schedule?.name ?? "");
  const [images, setImages] = useState(schedule?.images.map((i) => `${i.name}=${i.image}`).join(";\n") ?? "");
  const [hours, setHours] = useState<string | number>(schedule?.interval_hours ?? 1);
  const [cron, setCron] = useState(schedule?.cron ?? "");
  const [concurrency, setConcurrency] = useState<string | number>(schedule?.concurrency ?? "");
  const [selector, setSelector] = useState(
    Object.entries(schedule?.node_selector ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(","),
  );
  const [insecure, setInsecure] = useState(schedule?.insecure_registries.join(",") ?? "");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const create = useCreatePullSchedule();
  const update = useUpdatePullSchedule();
  const error = create.error ?? update.error;
  const fields = error instanceof ApiError ? error.fields : {};
  const field = (f: string) => {
    const m = fields[f] ?? Object.entries(fields).find(([k]) => k.startsWith(`${f}.`))?.[1];
    return m ? sentence(m) : undefined;
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = {
      name: name.trim(),
      images,
      // A cron expression replaces the interval.
      ...(cron.trim() ? { cron: cron.trim() } : hours !== "" ? { interval_hours: Number(hours) } : {}),
      ...(concurrency !== "" ? { concurrency: Number(concurrency) } : {}),
      node_selector: selectorOf(selector),
      insecure_registries: insecure
        .split(/[,\n]/)
        .map((s) => s.trim())
        .filter(Boolean),
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
    };
    if (schedule) update.mutate({ id: schedule.id, body }, { onSuccess: () => onSaved?.() });
    else create.mutate(body, { onSuccess: (s) => navigate(`/pulls/${s.id}`) });
  };
  return (
    <Form onSubmit={submit} maw={720} label={schedule ? "Edit pull schedule" : "Add pull schedule"}>
      <Text fw={600}>{schedule ? "Edit the schedule (it is checked again at once)" : "Add a schedule"}</Text>
      <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} error={field("name")} />
      <Textarea
        label="Images"
        description="NAME=IMAGE;NAME=IMAGE, as the Image Puller's IMAGES"
        placeholder="app=registry:5000/team/app:v1;tools=registry:5000/team/tools:2"
        required
        autosize
        minRows={2}
        value={images}
        onChange={(e) => setImages(e.currentTarget.value)}
        error={field("images")}
      />
      <Group grow>
        <NumberInput
          label="Every (hours)"
          description={cron.trim() ? "not used: the cron expression decides" : "or a cron expression instead"}
          min={MIN_PULL_INTERVAL_MS / 3_600_000}
          value={hours}
          onChange={setHours}
          error={field("interval_hours")}
          disabled={cron.trim() !== ""}
        />
        <TextInput
          label="Cron expression (instead of hours)"
          description="5 or 6 fields, e.g. 0 3 * * * (03:00 every day); runs at least a minute apart"
          value={cron}
          onChange={(e) => setCron(e.currentTarget.value)}
          error={field("cron")}
        />
      </Group>
      <Group grow>
        <NumberInput
          label="Concurrency (images pulled at once)"
          description="1 to 100 (default 1)"
          min={1}
          max={100}
          allowDecimal={false}
          value={concurrency}
          onChange={setConcurrency}
          error={field("concurrency")}
        />
        <TextInput
          label="Node selector"
          description="labels the peers must have: zone=a,arch=amd64"
          value={selector}
          onChange={(e) => setSelector(e.currentTarget.value)}
          error={field("node_selector")}
        />
      </Group>
      <TextInput
        label="Plain-HTTP registries"
        description="host:port, comma-separated"
        value={insecure}
        onChange={(e) => setInsecure(e.currentTarget.value)}
        error={field("insecure_registries")}
      />
      <Group grow>
        <TextInput label="Registry username" autoComplete="off" value={username} onChange={(e) => setUsername(e.currentTarget.value)} />
        <PasswordInput label="Registry password" autoComplete="off" value={password} onChange={(e) => setPassword(e.currentTarget.value)} />
      </Group>
      {error && !Object.keys(fields).length && <ErrorNote error={error} />}
      <Group>
        <Button type="submit" loading={create.isPending || update.isPending}>
          {schedule ? "Save schedule" : "Add schedule"}
        </Button>
      </Group>
    </Form>
  );
}

export default function Pulls() {
  const root = useMe().data?.role === "root";
  const [page, setPage] = useState(1);
  const pulls = usePullSchedules(page);
  return (
    <Stack>
      <PageTitle>Pull schedules</PageTitle>
      <Text size="sm">
        Image lists kept warm on the peers whose labels match, every interval: each run resolves the tags and fetches only what a node lacks, through the swarm
        (the registry serves each blob about once).
      </Text>
      <ErrorNote error={pulls.error} title="Could not load the schedules" />
      <TableScroll label="Pull schedules table">
        <Table striped data-testid="pulls-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Images</Table.Th>
              <Table.Th>Nodes</Table.Th>
              <Table.Th>Every</Table.Th>
              <Table.Th>Warm</Table.Th>
              <Table.Th>Last run</Table.Th>
              <Table.Th>Next run</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {pulls.data?.items.map((s) => {
              const selected = s.status?.cells.filter((c) => c.state !== "not_selected") ?? [];
              return (
                <Table.Tr key={s.id}>
                  <Table.Td>
                    <Link href={`/pulls/${s.id}`}>{s.name}</Link>
                  </Table.Td>
                  <Table.Td>{s.images.map((i) => i.name).join(", ")}</Table.Td>
                  <Table.Td>
                    {Object.entries(s.node_selector)
                      .map(([k, v]) => `${k}=${v}`)
                      .join(", ") || "every peer"}
                  </Table.Td>
                  <Table.Td>{s.cron ?? `${s.interval_hours} h`}</Table.Td>
                  <Table.Td>{s.status ? `${selected.filter((c) => c.state === "warm").length} of ${selected.length} image × node` : "—"}</Table.Td>
                  <Table.Td>{s.last_run_at ? <Time iso={s.last_run_at} /> : "never"}</Table.Td>
                  <Table.Td>{s.next_run_at ? <Time iso={s.next_run_at} /> : s.enabled ? "—" : "disabled"}</Table.Td>
                </Table.Tr>
              );
            })}
            {pulls.data?.items.length === 0 && (
              <Table.Tr>
                <Table.Td colSpan={7}>No schedule yet.</Table.Td>
              </Table.Tr>
            )}
          </Table.Tbody>
        </Table>
      </TableScroll>
      {pulls.data && <Pager page={page} lastPage={pulls.data.lastPage} total={pulls.data.total} what="schedules" onPage={setPage} />}
      {root && <ScheduleForm />}
    </Stack>
  );
}
