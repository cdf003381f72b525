/** Every preheat, newest first: paged, filtered by state and searched by URL on the server; the filter lives in the URL. */
import { useEffect, useState } from "react";
import { Anchor, Button, Group, NativeSelect, Stack, Table, Text, TextInput } from "@mantine/core";
import { Link, useLocation, useSearch } from "wouter";
import { JobState } from "@api/jobs";
import { useJobs, useMe } from "../lib/queries";
import { ErrorNote, JobStateBadge, PageTitle, Pager, Time } from "../ui/bits";
import { TableScroll } from "../ui/table-scroll";

export default function PreheatList() {
  const search = new URLSearchParams(useSearch());
  const [, navigate] = useLocation();
  const parsedState = JobState.safeParse(search.get("state"));
  const state = parsedState.success ? parsedState.data : undefined;
  const url = search.get("url") ?? "";
  const page = Math.max(1, Number(search.get("page")) || 1);
  const [typed, setTyped] = useState(url);
  useEffect(() => setTyped(url), [url]);
  const jobs = useJobs({ page, state, url: url || undefined });
  const me = useMe().data;

  const go = (change: Record<string, string | undefined>) => {
    const next = new URLSearchParams(search);
    for (const [k, v] of Object.entries(change))
      if (v) next.set(k, v);
      else next.delete(k);
    navigate(`/preheats${next.size ? `?${next}` : ""}`);
  };

  return (
    <Stack>
      <PageTitle
        actions={
          me?.role === "root" && (
            <Button component={Link} href="/preheats/new">
              Add preheat
            </Button>
          )
        }
      >
        Preheats
      </PageTitle>
      <Group
        align="end"
        component="form"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          go({ url: typed.trim() || undefined, page: undefined });
        }}
      >
        <NativeSelect
          label="State"
          value={state ?? ""}
          onChange={(e) => go({ state: e.currentTarget.value || undefined, page: undefined })}
          data={[{ value: "", label: "Any state" }, ...JobState.options.map((s) => ({ value: s, label: s }))]}
        />
        <TextInput label="URL contains" value={typed} onChange={(e) => setTyped(e.currentTarget.value)} w={360} />
        <Button type="submit" variant="default">
          Search
        </Button>
      </Group>
      <ErrorNote error={jobs.error} title="Could not load the preheats" />
      <TableScroll label="Preheats table">
        <Table striped highlightOnHover>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>ID</Table.Th>
              <Table.Th>URL</Table.Th>
              <Table.Th>Type</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>Clusters</Table.Th>
              <Table.Th>Created</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {jobs.data?.items.map((j) => (
              <Table.Tr key={j.id}>
                <Table.Td>
                  <Anchor component={Link} href={`/preheats/${j.id}`}>
                    {j.id}
                  </Anchor>
                </Table.Td>
                <Table.Td style={{ wordBreak: "break-all" }}>
                  <Anchor component={Link} href={`/preheats/${j.id}`}>
                    {j.args.url}
                  </Anchor>
                  {j.args.urls?.length ? <Text size="xs">and {j.args.urls.length} more</Text> : null}
                  {j.bio && <Text size="xs">{j.bio}</Text>}
                </Table.Td>
                <Table.Td>{j.args.type}</Table.Td>
                <Table.Td>
                  <JobStateBadge state={j.state} />
                </Table.Td>
                <Table.Td>{j.scheduler_clusters.map((c) => c.name).join(", ")}</Table.Td>
                <Table.Td>
                  <Time iso={j.created_at} />
                </Table.Td>
              </Table.Tr>
            ))}
            {jobs.data?.items.length === 0 && (
              <Table.Tr>
                <Table.Td colSpan={6}>No preheat matches.</Table.Td>
              </Table.Tr>
            )}
          </Table.Tbody>
        </Table>
      </TableScroll>
      {jobs.data && <Pager page={page} lastPage={jobs.data.lastPage} total={jobs.data.total} what="preheats" onPage={(p) => go({ page: String(p) })} />}
    </Stack>
  );
}
