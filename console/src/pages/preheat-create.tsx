/**
 * A new preheat: every argument the Open API takes. Piece length has exactly the API's
 * bounds (PIECE in src/common/defaults.ts); what the API refuses is shown next to the
 * field it names, in the API's own words.
 */
import { useState, type FormEvent } from "react";
import { Button, Checkbox, Fieldset, Group, NativeSelect, NumberInput, PasswordInput, Radio, Stack, Text, TextInput, Textarea } from "@mantine/core";
import { useLocation } from "wouter";
import { PreheatScope } from "@api/scheduler";
import { DEFAULT_PREHEAT_FILTER, MiB, PIECE } from "@common/defaults";
import { splitHeaderLine } from "@common/headers";
import { ApiError } from "../lib/client";
import { useAllClusters, useCreateJob } from "../lib/queries";
import { Form, PageTitle } from "../ui/bits";
import { type FieldUnit, sentence } from "../lib/field-message";

const lines = (s: string) =>
  s
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
const num = (v: string | number) => (v === "" ? undefined : Number(v));

/** Header lines `Name: value` → an object (a line without a colon is sent as a name with an empty value, for the API to judge). */
function parseHeaders(text: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const l of lines(text)) {
    const header = splitHeaderLine(l);
    if (header) out[header.name] = header.value;
    else out[l.trim()] = "";
  }
  return Object.keys(out).length ? out : undefined;
}

export default function PreheatCreate() {
  const [, navigate] = useLocation();
  const clusters = useAllClusters();
  const create = useCreateJob();
  const [type, setType] = useState<"file" | "image">("file");
  const [urls, setUrls] = useState("");
  const [bio, setBio] = useState("");
  const [clusterIds, setClusterIds] = useState<string[] | null>(null);
  const [pieceMiB, setPieceMiB] = useState<string | number>("");
  const [tag, setTag] = useState("");
  const [application, setApplication] = useState("");
  const [filter, setFilter] = useState(DEFAULT_PREHEAT_FILTER);
  const [headers, setHeaders] = useState("");
  const [platform, setPlatform] = useState("");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [scope, setScope] = useState<string>("single_seed_peer");
  const [ips, setIps] = useState("");
  const [count, setCount] = useState<string | number>("");
  const [percentage, setPercentage] = useState<string | number>("");
  const [peerConcurrency, setPeerConcurrency] = useState<string | number>("");
  const [taskConcurrency, setTaskConcurrency] = useState<string | number>("");
  const [timeout, setTimeoutText] = useState("");
  const [clusterError, setClusterError] = useState<string>();

  // Until the user picks, the default cluster is selected.
  const selected = clusterIds ?? clusters.data?.items.filter((c) => c.is_default).map((c) => String(c.id)) ?? [];
  const fields = create.error instanceof ApiError ? create.error.fields : {};
  const used = new Set<string>();
  const err = (...paths: string[]) => errIn(undefined, ...paths);
  const errIn = (unit: FieldUnit | undefined, ...paths: string[]) => {
    const hits = Object.entries(fields).filter(([k]) => paths.some((p) => k === p || k.startsWith(`${p}.`) || k.startsWith(`${p}[`)));
    for (const [k] of hits) used.add(k);
    return hits.length ? hits.map(([k, v]) => (paths.includes(k) ? sentence(v, unit) : `${k}: ${sentence(v, unit)}`)).join(" ") : undefined;
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (selected.length === 0) return setClusterError("choose at least one cluster");
    setClusterError(undefined);
    const [first, ...rest] = lines(urls);
    const t = timeout.trim();
    const args = {
      type,
      url: first ?? "",
      ...(rest.length ? { urls: rest } : {}),
      ...(pieceMiB !== "" ? { pieceLength: Number(pieceMiB) * MiB } : {}),
      ...(tag ? { tag } : {}),
      ...(application ? { application } : {}),
      filteredQueryParams: filter,
      ...(parseHeaders(headers) ? { headers: parseHeaders(headers) } : {}),
      ...(type === "image" && platform ? { platform } : {}),
      ...(type === "image" && username ? { username } : {}),
      ...(type === "image" && password ? { password } : {}),
      scope,
      ...(lines(ips).length
        ? {
            ips: lines(ips).flatMap((l) =>
              l
                .split(",")
                .map((x) => x.trim())
                .filter(Boolean),
            ),
          }
        : {}),
      ...(num(count) !== undefined ? { count: num(count) } : {}),
      ...(num(percentage) !== undefined ? { percentage: num(percentage) } : {}),
      ...(num(peerConcurrency) !== undefined ? { concurrent_peer_count: num(peerConcurrency) } : {}),
      ...(num(taskConcurrency) !== undefined ? { concurrent_task_count: num(taskConcurrency) } : {}),
      ...(t ? { timeout: /^\d+(\.\d+)?$/.test(t) ? Number(t) : t } : {}),
    };
    create.mutate(
      { type: "preheat", args, ...(bio ? { bio } : {}), scheduler_cluster_ids: selected.map(Number) },
      { onSuccess: (job) => navigate(`/preheats/${job.id}`) },
    );
  };

  const urlError = err("args.url", "args.urls");
  const fieldMessages = {
    bio: err("bio"),
    clusters: clusterError ?? err("scheduler_cluster_ids"),
    piece: errIn("MiB", "args.pieceLength", "args.piece_length"),
    tag: err("args.tag"),
    application: err("args.application"),
    filter: err("args.filteredQueryParams"),
    headers: err("args.headers"),
    platform: err("args.platform"),
    username: err("args.username"),
    password: err("args.password"),
    scope: err("args.scope"),
    ips: err("args.ips"),
    count: err("args.count"),
    percentage: err("args.percentage"),
    peers: err("args.concurrent_peer_count"),
    tasks: err("args.concurrent_task_count"),
    timeout: errIn("seconds", "args.timeout"),
    type: err("args.type"),
  };
  // What the API refused that no field shows (e.g. a rate limit, or a message without a field).
  const general =
    create.error && Object.keys(fields).every((k) => !used.has(k))
      ? create.error.message
      : Object.entries(fields)
          .filter(([k]) => !used.has(k))
          .map(([k, v]) => `${k}: ${sentence(v)}`)
          .join(" ");

  return (
    <Form onSubmit={submit} maw={760} label="New preheat">
      <PageTitle>Add preheat</PageTitle>
      <Fieldset legend="What to preheat">
        <Stack>
          <Radio.Group label="Type" value={type} onChange={(v) => setType(v as "file" | "image")} error={fieldMessages.type}>
            <Group mt={4}>
              <Radio value="file" label="File (any URL)" />
              <Radio value="image" label="Image (a manifest URL: every layer)" />
            </Group>
          </Radio.Group>
          <Textarea
            label="URL, or URLs one per line"
            description={type === "image" ? "https://<registry>/v2/<repository>/manifests/<tag or digest>" : "http(s) URLs of the files"}
            required
            autosize
            minRows={2}
            value={urls}
            onChange={(e) => setUrls(e.currentTarget.value)}
            error={urlError}
          />
          <TextInput label="Description" value={bio} onChange={(e) => setBio(e.currentTarget.value)} error={fieldMessages.bio} />
          {type === "image" && (
            <Group grow align="start">
              <TextInput
                label="Platform"
                description="os/arch, e.g. linux/amd64"
                value={platform}
                onChange={(e) => setPlatform(e.currentTarget.value)}
                error={fieldMessages.platform}
              />
              <TextInput
                label="Registry user name"
                autoComplete="off"
                value={username}
                onChange={(e) => setUsername(e.currentTarget.value)}
                error={fieldMessages.username}
              />
              <PasswordInput
                label="Registry password"
                autoComplete="off"
                value={password}
                onChange={(e) => setPassword(e.currentTarget.value)}
                error={fieldMessages.password}
                visibilityToggleButtonProps={{ "aria-label": "Show or hide the registry password" }}
              />
            </Group>
          )}
        </Stack>
      </Fieldset>

      <Fieldset legend="Where">
        <Stack>
          <Checkbox.Group label="Clusters (at least one)" value={selected} onChange={setClusterIds} error={fieldMessages.clusters}>
            <Group mt={4}>
              {clusters.data?.items.map((c) => (
                <Checkbox key={c.id} value={String(c.id)} label={`${c.name}${c.is_default ? " (default)" : ""}`} />
              ))}
            </Group>
          </Checkbox.Group>
          <NativeSelect
            label="Scope"
            value={scope}
            onChange={(e) => setScope(e.currentTarget.value)}
            error={fieldMessages.scope}
            data={PreheatScope.options.map((s) => ({ value: s, label: s.replaceAll("_", " ") }))}
          />
          <Textarea
            label="Only these hosts (IP addresses, one per line)"
            description="Scopes all_peers and all_seed_peers"
            autosize
            value={ips}
            onChange={(e) => setIps(e.currentTarget.value)}
            error={fieldMessages.ips}
          />
          <Group grow align="start">
            <NumberInput label="Count of hosts" hideControls allowDecimal={false} value={count} onChange={setCount} error={fieldMessages.count} />
            <NumberInput
              label="Percentage of hosts"
              hideControls
              allowDecimal={false}
              value={percentage}
              onChange={setPercentage}
              error={fieldMessages.percentage}
            />
          </Group>
        </Stack>
      </Fieldset>

      <Fieldset legend="How">
        <Stack>
          <NumberInput
            label="Piece length (MiB)"
            description={`Empty: chosen from the size. Otherwise ${PIECE.minExplicit / MiB} to ${PIECE.maxExplicit / MiB} MiB, as the API accepts; it becomes part of the task ID.`}
            hideControls
            allowDecimal={false}
            clampBehavior="none"
            min={PIECE.minExplicit / MiB}
            max={PIECE.maxExplicit / MiB}
            value={pieceMiB}
            onChange={setPieceMiB}
            error={fieldMessages.piece}
          />
          <Group grow align="start">
            <TextInput label="Tag" value={tag} onChange={(e) => setTag(e.currentTarget.value)} error={fieldMessages.tag} />
            <TextInput label="Application" value={application} onChange={(e) => setApplication(e.currentTarget.value)} error={fieldMessages.application} />
          </Group>
          <TextInput
            label="Filtered query parameters"
            description="Left out of the task ID, so signed URLs meet the same task (Name&Name)"
            value={filter}
            onChange={(e) => setFilter(e.currentTarget.value)}
            error={fieldMessages.filter}
          />
          <Textarea
            label="Request headers (Name: value, one per line)"
            autosize
            value={headers}
            onChange={(e) => setHeaders(e.currentTarget.value)}
            error={fieldMessages.headers}
          />
          <Group grow align="start">
            <NumberInput
              label="Hosts fetching at once"
              hideControls
              allowDecimal={false}
              value={peerConcurrency}
              onChange={setPeerConcurrency}
              error={fieldMessages.peers}
            />
            <NumberInput
              label="URLs at once"
              hideControls
              allowDecimal={false}
              value={taskConcurrency}
              onChange={setTaskConcurrency}
              error={fieldMessages.tasks}
            />
            <TextInput
              label="Timeout"
              description="Seconds, or e.g. 30m"
              value={timeout}
              onChange={(e) => setTimeoutText(e.currentTarget.value)}
              error={fieldMessages.timeout}
            />
          </Group>
        </Stack>
      </Fieldset>

      {general && (
        <Text c="red.9" role="alert">
          {general}
        </Text>
      )}
      <Group>
        <Button type="submit" loading={create.isPending}>
          Create preheat
        </Button>
        <Button variant="default" onClick={() => navigate("/preheats")}>
          Cancel
        </Button>
      </Group>
    </Form>
  );
}
