/** Personal access tokens for the Open API: create (the value is shown once), list, revoke. */
import { useState, type FormEvent } from "react";
import { Alert, Button, Checkbox, Code, CopyButton, Group, NativeSelect, Stack, Table, Text, TextInput } from "@mantine/core";
import type { TokenScope, TokenView } from "@api/tokens";
import { ApiError } from "../lib/client";
import { useCreateToken, useMe, useRevokeToken, useTokens } from "../lib/queries";
import { ErrorNote, Form, GREEN, PageTitle, Pager, Time, UpDownBadge } from "../ui/bits";
import { TableScroll } from "../ui/table-scroll";

const LIFETIMES = [
  { value: "7", label: "7 days" },
  { value: "30", label: "30 days" },
  { value: "90", label: "90 days" },
  { value: "365", label: "1 year" },
];

function CreateToken({ onCreated }: { onCreated: (t: TokenView) => void }) {
  const [name, setName] = useState("");
  const [bio, setBio] = useState("");
  const [scopes, setScopes] = useState<string[]>(["job"]);
  const [days, setDays] = useState("90");
  const create = useCreateToken();
  const fields = create.error instanceof ApiError ? create.error.fields : {};
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const expired_at = new Date(Date.now() + Number(days) * 86_400_000).toISOString();
    create.mutate({ name, bio, scopes: scopes as TokenScope[], expired_at }, { onSuccess: (t) => (onCreated(t), setName(""), setBio("")) });
  };
  const general = create.error && !fields.name && !fields.scopes && !fields.expired_at && !fields.bio ? create.error.message : undefined;
  return (
    <Form onSubmit={submit} maw={560} label="New token">
      <h2 style={{ fontSize: "1.2rem", margin: 0 }}>New token</h2>
      <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} error={fields.name} />
      <TextInput label="What it is for" value={bio} onChange={(e) => setBio(e.currentTarget.value)} error={fields.bio} />
      <Checkbox.Group label="Scopes" value={scopes} onChange={setScopes} error={fields.scopes}>
        <Group mt={4}>
          <Checkbox value="job" label="job (preheat jobs: /oapi/v1/jobs)" />
          <Checkbox value="cluster" label="cluster (/oapi/v1/clusters)" />
        </Group>
      </Checkbox.Group>
      <NativeSelect label="Expires after" value={days} onChange={(e) => setDays(e.currentTarget.value)} data={LIFETIMES} error={fields.expired_at} />
      {general && (
        <Text c="red.9" role="alert" size="sm">
          {general}
        </Text>
      )}
      <Button type="submit" loading={create.isPending}>
        Create token
      </Button>
    </Form>
  );
}

export default function Tokens() {
  const [page, setPage] = useState(1);
  const tokens = useTokens(page);
  const revoke = useRevokeToken();
  const root = useMe().data?.role === "root";
  const [created, setCreated] = useState<TokenView>();
  return (
    <Stack>
      <PageTitle>Personal access tokens</PageTitle>
      {root && <CreateToken onCreated={setCreated} />}
      {created?.token && (
        <Alert color={GREEN} variant="outline" title={`Token ${created.name} created`} role="status">
          <Stack gap="xs">
            <Text size="sm">Copy it now: it is shown only this once (the manager keeps only its hash).</Text>
            <Group>
              <Code data-testid="new-token" style={{ wordBreak: "break-all" }}>
                {created.token}
              </Code>
              <CopyButton value={created.token}>
                {({ copied, copy }) => (
                  <Button size="xs" variant={copied ? "filled" : "default"} onClick={copy}>
                    {copied ? "Copied" : "Copy token"}
                  </Button>
                )}
              </CopyButton>
            </Group>
            <Text size="sm">
              Use it as <Code>Authorization: Bearer …</Code> on <Code>/oapi/v1</Code>.
            </Text>
          </Stack>
        </Alert>
      )}
      <ErrorNote error={tokens.error ?? revoke.error} />
      <TableScroll label="Tokens table">
        <Table striped>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Scopes</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>Expires</Table.Th>
              <Table.Th>Created</Table.Th>
              {root && <Table.Th>Actions</Table.Th>}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {tokens.data?.items.map((t) => {
              const expired = Date.parse(t.expired_at) <= Date.now();
              return (
                <Table.Tr key={t.id}>
                  <Table.Td>
                    {t.name}
                    {t.bio && <Text size="xs">{t.bio}</Text>}
                  </Table.Td>
                  <Table.Td>{t.scopes.join(", ")}</Table.Td>
                  <Table.Td>
                    <UpDownBadge up={t.state === "active" && !expired} upLabel="Active" downLabel={expired ? "Expired" : "Revoked"} />
                  </Table.Td>
                  <Table.Td>
                    <Time iso={t.expired_at} />
                  </Table.Td>
                  <Table.Td>
                    <Time iso={t.created_at} />
                  </Table.Td>
                  {root && (
                    <Table.Td>
                      {t.state === "active" && (
                        <Button size="xs" color="red.9" variant="outline" onClick={() => revoke.mutate(t.id)} aria-label={`Revoke token ${t.name}`}>
                          Revoke
                        </Button>
                      )}
                    </Table.Td>
                  )}
                </Table.Tr>
              );
            })}
            {tokens.data?.items.length === 0 && (
              <Table.Tr>
                <Table.Td colSpan={6}>No tokens yet.</Table.Td>
              </Table.Tr>
            )}
          </Table.Tbody>
        </Table>
      </TableScroll>
      {tokens.data && <Pager page={page} lastPage={tokens.data.lastPage} total={tokens.data.total} what="tokens" onPage={setPage} />}
    </Stack>
  );
}
