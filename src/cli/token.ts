/**
 * `kiln token`: personal access tokens for the Open API. Signs in to the manager
 * as a user (--user, default root; password from --password or
 * KILN_MANAGER_PASSWORD), then creates, lists or revokes tokens.
 */
import { InvalidArgumentError, type Command } from "commander";
import { PORTS } from "../common/defaults.js";
import { type ClientTimeouts, ConsoleClient } from "../api/manager-client.js";
import { KilnError } from "../common/errors.js";
import { TokenScope } from "../api/tokens.js";
import { collect, parseDuration } from "./options.js";

interface UserFlags extends ManagerFlags {
  user: string;
  password?: string;
}

async function signIn(f: UserFlags): Promise<ConsoleClient> {
  const password = f.password ?? process.env.KILN_MANAGER_PASSWORD;
  if (!password) throw new Error("give the user's password with --password or KILN_MANAGER_PASSWORD");
  const client = new ConsoleClient(f.manager, managerTimeouts(f));
  const s = await signInAs(client, f.user, password);
  if (s.user.must_change_password) {
    throw new Error(`the password of ${f.user} must be changed first: kiln token password --user ${f.user} --new-password <new>`);
  }
  return client;
}

function userOptions(cmd: Command): Command {
  return addManagerOption(cmd)
    .option("--user <name>", "user to sign in as", "root")
    .option("--password <password>", "the user's password (env KILN_MANAGER_PASSWORD)");
}

function parseScope(value: string, previous: string[]): string[] {
  if (!TokenScope.safeParse(value).success) throw new InvalidArgumentError(`scope must be one of ${TokenScope.options.join(", ")}`);
  return collect(value, previous);
}

export function registerTokenCommand(program: Command): void {
  const token = program.command("token").description("personal access tokens for the Open API (/oapi/v1)");

  userOptions(
    token
      .command("create")
      .description("create a token and print it (shown once) on stdout")
      .option("--scope <scope>", "job (preheat jobs) or cluster (clusters); repeatable", parseScope, [])
      .option("--name <name>", "token name", "kiln-cli")
      .option("--bio <text>", "what the token is for", "")
      .option("--expires-in <duration>", "lifetime, e.g. 30d, 12h (default: 365d)", parseDuration)
      .option("--json", "print the whole token record as JSON"),
  ).action(async (f: UserFlags & { scope: string[]; name: string; bio: string; expiresIn?: number; json?: boolean }) => {
    try {
      const scopes = (f.scope.length ? f.scope : ["job"]) as TokenScope[];
      const client = await signIn(f);
      const t = await client.createToken({
        name: f.name,
        bio: f.bio,
        scopes,
        expired_at: new Date(Date.now() + (f.expiresIn ?? 365 * 86_400_000)).toISOString(),
      });
      process.stdout.write(f.json ? `${JSON.stringify(t, null, 2)}\n` : `${t.token}\n`);
      if (!f.json) process.stderr.write(`token ${t.id} (${t.scopes.join(",")}) expires ${t.expired_at}; it is not shown again\n`);
    } catch (err) {
      fail("token create", err);
    }
  });

  userOptions(token.command("list").description("list tokens (never their values)")).action(async (f: UserFlags) => {
    try {
      const client = await signIn(f);
      for (const t of await client.listTokens()) {
        process.stdout.write(`${String(t.id).padEnd(5)} ${t.state.padEnd(8)} ${t.scopes.join(",").padEnd(12)} ${t.expired_at}  ${t.name}\n`);
      }
    } catch (err) {
      fail("token list", err);
    }
  });

  userOptions(token.command("revoke").description("make a token inactive").argument("<id>", "token id")).action(async (id: string, f: UserFlags) => {
    try {
      const client = await signIn(f);
      const t = await client.updateToken(Number(id), { state: "inactive" });
      process.stderr.write(`token ${t.id} is now ${t.state}\n`);
    } catch (err) {
      fail("token revoke", err);
    }
  });

  userOptions(
    token
      .command("password")
      .description("change the user's password (required after the first start)")
      .requiredOption("--new-password <password>", "the new password (at least 8 characters)"),
  ).action(async (f: UserFlags & { newPassword: string }) => {
    try {
      const password = f.password ?? process.env.KILN_MANAGER_PASSWORD;
      if (!password) throw new Error("give the current password with --password or KILN_MANAGER_PASSWORD");
      const client = new ConsoleClient(f.manager, managerTimeouts(f));
      const s = await signInAs(client, f.user, password);
      await client.resetPassword(s.user.id, password, f.newPassword);
      process.stderr.write(`password of ${f.user} changed\n`);
    } catch (err) {
      fail("token password", err);
    }
  });
}

/* Flags shared by the CLI commands that talk to the manager (kiln token, kiln preheat); kept here, not in
   manager.ts, so that these clients do not load the manager server. */

export const DEFAULT_MANAGER_URL = process.env.KILN_MANAGER ?? `http://127.0.0.1:${PORTS.manager}`;

/** What every command that talks to the manager takes: where it is, and how long to wait for it. */
export interface ManagerFlags {
  manager: string;
  requestTimeout: number;
}

/** Each request to the manager must be answered within this (the connection accepted within 5 s, or this when shorter). */
export const DEFAULT_REQUEST_TIMEOUT = "10s";

export function addManagerOption(cmd: Command): Command {
  return cmd
    .option("--manager <url>", "manager URL (env KILN_MANAGER)", DEFAULT_MANAGER_URL)
    .option(
      "--request-timeout <duration>",
      `longest wait for each answer from the manager, e.g. 10s, 2m; the connection must be accepted within 5 s or this when shorter (env KILN_REQUEST_TIMEOUT; default ${DEFAULT_REQUEST_TIMEOUT})`,
      parseDuration,
      parseDuration(process.env.KILN_REQUEST_TIMEOUT || DEFAULT_REQUEST_TIMEOUT),
    );
}

export function managerTimeouts(f: Pick<ManagerFlags, "requestTimeout">): ClientTimeouts {
  return { answerMs: f.requestTimeout };
}

/** Signs in; a 401 says which user was refused and where, not just "Unauthorized". */
async function signInAs(client: ConsoleClient, user: string, password: string) {
  try {
    return await client.signIn(user, password);
  } catch (err) {
    if (err instanceof KilnError && err.status === 401) {
      throw new Error(
        `the manager at ${client.baseUrl} refused the sign-in of ${user}: wrong user name or password (after 5 wrong tries in 15 min it refuses for a while)`,
      );
    }
    throw err;
  }
}

export function fail(command: string, err: unknown): void {
  const message = (err as Error).message;
  const hint = /sent no answer within|did not accept the connection within/.test(message)
    ? " (--request-timeout or KILN_REQUEST_TIMEOUT sets how long to wait)"
    : "";
  process.stderr.write(`kiln ${command}: ${message}${hint}\n`);
  process.exitCode = 1;
}
