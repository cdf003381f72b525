/** Changing one's own password: forced after a first (generated or root-given) password, and on the account page. */
import { useState, type FormEvent } from "react";
import { Alert, Button, Center, Paper, PasswordInput, Stack, Text } from "@mantine/core";
import type { UserView } from "@api/users";
import { Form } from "../ui/bits";
import { ApiError } from "../lib/client";
import { useChangePassword } from "../lib/queries";

const toggle = { "aria-label": "Show or hide the password" };

export function ChangePasswordForm({ me, onChanged, submitLabel = "Change password" }: { me: UserView; onChanged: () => void; submitLabel?: string }) {
  const [oldPassword, setOld] = useState("");
  const [newPassword, setNew] = useState("");
  const [repeat, setRepeat] = useState("");
  const [repeatError, setRepeatError] = useState<string>();
  const change = useChangePassword();
  const fields = change.error instanceof ApiError ? change.error.fields : {};

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (newPassword !== repeat) return setRepeatError("The two new passwords differ.");
    setRepeatError(undefined);
    change.mutate({ id: me.id, old_password: oldPassword, new_password: newPassword }, { onSuccess: onChanged });
  };
  const general = change.error && !fields.new_password && !fields.old_password ? change.error.message : undefined;

  return (
    <Form onSubmit={submit} maw={420} label="Change password">
      <PasswordInput
        label="Current password"
        autoComplete="current-password"
        required
        value={oldPassword}
        onChange={(e) => setOld(e.currentTarget.value)}
        error={fields.old_password}
        visibilityToggleButtonProps={toggle}
      />
      <PasswordInput
        label="New password"
        description="At least 8 characters"
        autoComplete="new-password"
        required
        value={newPassword}
        onChange={(e) => setNew(e.currentTarget.value)}
        error={fields.new_password}
        visibilityToggleButtonProps={toggle}
      />
      <PasswordInput
        label="New password again"
        autoComplete="new-password"
        required
        value={repeat}
        onChange={(e) => setRepeat(e.currentTarget.value)}
        error={repeatError}
        visibilityToggleButtonProps={toggle}
      />
      {general && (
        <Text c="red.9" role="alert" size="sm">
          {general}
        </Text>
      )}
      <Button type="submit" loading={change.isPending}>
        {submitLabel}
      </Button>
    </Form>
  );
}

export function ForcedPasswordChange({ me, onChanged }: { me: UserView; onChanged: () => void }) {
  return (
    <main>
      <Center mih="100vh">
        <Paper withBorder p="xl" w={460}>
          <Stack>
            <h1 style={{ margin: 0, fontSize: "1.5rem" }}>Choose your own password</h1>
            <Alert color="blue.9" variant="outline">
              <Text size="sm">
                {me.name} signed in with a first password (generated at the manager's first start, or set by a root user). Nothing else works until it is
                changed; then sign in again with the new one.
              </Text>
            </Alert>
            <ChangePasswordForm me={me} onChanged={onChanged} submitLabel="Change password and sign in again" />
          </Stack>
        </Paper>
      </Center>
    </main>
  );
}
