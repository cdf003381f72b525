/** Users: everyone sees the list; root creates users, sets their role (root or guest) and disables or enables them. */
import { useState, type FormEvent } from "react";
import { Button, Group, NativeSelect, PasswordInput, Stack, Table, Text, TextInput } from "@mantine/core";
import { Role, type UserView } from "@api/users";
import { ApiError } from "../lib/client";
import { useCreateUser, useMe, useSetRole, useUpdateUser, useUsers } from "../lib/queries";
import { ErrorNote, Form, GREEN, PageTitle, Pager, Time, UpDownBadge } from "../ui/bits";
import { TableScroll } from "../ui/table-scroll";

function CreateUser() {
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>("guest");
  const create = useCreateUser();
  const fields = create.error instanceof ApiError ? create.error.fields : {};
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({ name, password, role, ...(email ? { email } : {}) }, { onSuccess: () => (setName(""), setEmail(""), setPassword("")) });
  };
  const general = create.error && !fields.name && !fields.email && !fields.password ? create.error.message : undefined;
  return (
    <Form onSubmit={submit} maw={560} label="New user">
      <h2 style={{ fontSize: "1.2rem", margin: 0 }}>New user</h2>
      <Group grow align="start">
        <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} error={fields.name} />
        <TextInput label="Email" type="email" value={email} onChange={(e) => setEmail(e.currentTarget.value)} error={fields.email} />
      </Group>
      <Group grow align="start">
        <PasswordInput
          label="First password"
          description="They must change it at first sign-in"
          required
          autoComplete="new-password"
          value={password}
          onChange={(e) => setPassword(e.currentTarget.value)}
          error={fields.password}
          visibilityToggleButtonProps={{ "aria-label": "Show or hide the first password" }}
        />
        <NativeSelect label="Role" value={role} onChange={(e) => setRole(e.currentTarget.value as Role)} data={Role.options} />
      </Group>
      {general && (
        <Text c="red.9" role="alert" size="sm">
          {general}
        </Text>
      )}
      <Button type="submit" loading={create.isPending}>
        Create user
      </Button>
    </Form>
  );
}

function RootActions({ u, me }: { u: UserView; me: UserView }) {
  const setRole = useSetRole();
  const update = useUpdateUser();
  const error = setRole.error ?? update.error;
  return (
    <Stack gap={4}>
      <Group gap="xs">
        <NativeSelect
          aria-label={`Role of ${u.name}`}
          size="xs"
          value={u.role}
          data={Role.options}
          onChange={(e) => setRole.mutate({ id: u.id, role: e.currentTarget.value as Role })}
        />
        {u.id !== me.id && (
          <Button
            size="xs"
            variant="outline"
            color={u.state === "active" ? "red.9" : GREEN}
            onClick={() => update.mutate({ id: u.id, body: { state: u.state === "active" ? "inactive" : "active" } })}
          >
            {u.state === "active" ? `Disable ${u.name}` : `Enable ${u.name}`}
          </Button>
        )}
      </Group>
      {error && (
        <Text c="red.9" size="xs" role="alert">
          {error.message}
        </Text>
      )}
    </Stack>
  );
}

export default function Users() {
  const [page, setPage] = useState(1);
  const users = useUsers(page);
  const me = useMe().data;
  const root = me?.role === "root";
  return (
    <Stack>
      <PageTitle>Users</PageTitle>
      {root && <CreateUser />}
      <ErrorNote error={users.error} />
      <TableScroll label="Users table">
        <Table striped>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Email</Table.Th>
              <Table.Th>Role</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>Created</Table.Th>
              {root && <Table.Th>Actions</Table.Th>}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {users.data?.items.map((u) => (
              <Table.Tr key={u.id}>
                <Table.Td>
                  {u.name}
                  {u.must_change_password && <Text size="xs">must change the first password</Text>}
                </Table.Td>
                <Table.Td>{u.email || "—"}</Table.Td>
                <Table.Td>{u.role}</Table.Td>
                <Table.Td>
                  <UpDownBadge up={u.state === "active"} upLabel="Active" downLabel="Disabled" />
                </Table.Td>
                <Table.Td>
                  <Time iso={u.created_at} />
                </Table.Td>
                {root && me && (
                  <Table.Td>
                    <RootActions u={u} me={me} />
                  </Table.Td>
                )}
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </TableScroll>
      {users.data && <Pager page={page} lastPage={users.data.lastPage} total={users.data.total} what="users" onPage={setPage} />}
    </Stack>
  );
}
