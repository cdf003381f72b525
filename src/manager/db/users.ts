/** Users and their console sessions. */
import type { Kysely } from "kysely";
import type { DialectName } from "./database.js";
import { insertReturningId } from "./insert.js";
import type { ManagerDatabase, UserRow } from "./schema.js";
import { nowIso } from "../time.js";

export class UsersRepo {
  constructor(
    private readonly db: Kysely<ManagerDatabase>,
    private readonly dialect: DialectName,
  ) {}

  byName(name: string): Promise<UserRow | undefined> {
    return this.db.selectFrom("users").selectAll().where("name", "=", name).executeTakeFirst();
  }

  byId(id: number): Promise<UserRow | undefined> {
    return this.db.selectFrom("users").selectAll().where("id", "=", id).executeTakeFirst();
  }

  async create(u: { name: string; email?: string; passwordHash: string; mustChangePassword: boolean }): Promise<number> {
    const now = nowIso();
    return insertReturningId(this.db, this.dialect, "users", {
      name: u.name,
      email: u.email ?? "",
      password_hash: u.passwordHash,
      state: "active",
      must_change_password: u.mustChangePassword ? 1 : 0,
      created_at: now,
      updated_at: now,
    });
  }

  async setPassword(id: number, passwordHash: string): Promise<void> {
    await this.db
      .updateTable("users")
      .set({ password_hash: passwordHash, must_change_password: 0, updated_at: nowIso() })
      .where("id", "=", id)
      .execute();
  }

  async createSession(userId: number, tokenHash: string, expiresAt: string): Promise<void> {
    await insertReturningId(this.db, this.dialect, "sessions", { user_id: userId, token_hash: tokenHash, expires_at: expiresAt, created_at: nowIso() });
  }

  async sessionUser(tokenHash: string): Promise<{ user: UserRow; expiresAt: string } | undefined> {
    const s = await this.db.selectFrom("sessions").selectAll().where("token_hash", "=", tokenHash).executeTakeFirst();
    if (!s) return undefined;
    const user = await this.byId(s.user_id);
    return user && { user, expiresAt: s.expires_at };
  }

  async dropSessions(userId: number, exceptHash?: string): Promise<void> {
    let q = this.db.deleteFrom("sessions").where("user_id", "=", userId);
    if (exceptHash) q = q.where("token_hash", "!=", exceptHash);
    await q.execute();
  }

  async dropExpiredSessions(nowIsoStr = nowIso()): Promise<void> {
    await this.db.deleteFrom("sessions").where("expires_at", "<", nowIsoStr).execute();
  }
}
