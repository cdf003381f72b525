/** Users and their console sessions. */
import type { Kysely } from "kysely";
import type { DialectName } from "./database.js";
import { insertReturningId, pageOf, toCount } from "./insert.js";
import type { ManagerDatabase, UserRow } from "./schema.js";
import { nowIso } from "../time.js";
import type { Role } from "../../api/users.js";
import { containsText } from "./like.js";

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

  async create(u: { name: string; email?: string; passwordHash: string; mustChangePassword: boolean; role: Role }): Promise<number> {
    const now = nowIso();
    return insertReturningId(this.db, this.dialect, "users", {
      name: u.name,
      email: u.email ?? "",
      password_hash: u.passwordHash,
      state: "active",
      must_change_password: u.mustChangePassword ? 1 : 0,
      role: u.role,
      created_at: now,
      updated_at: now,
    });
  }

  /** A page of users by id; `name` matches part of the name. */
  async list(q: { page: number; perPage: number; name?: string }): Promise<{ rows: UserRow[]; total: number }> {
    let base = this.db.selectFrom("users");
    if (q.name) base = base.where(containsText("name", q.name));
    return pageOf(
      q,
      () => base.select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow(),
      (limit, offset) => base.selectAll().orderBy("id").limit(limit).offset(offset).execute(),
    );
  }

  async update(id: number, set: { email?: string; state?: string; role?: Role }): Promise<void> {
    await this.db
      .updateTable("users")
      .set({ ...set, updated_at: nowIso() })
      .where("id", "=", id)
      .execute();
  }

  /** Active users with the root role: the last one may not lose it. */
  async activeRoots(): Promise<number> {
    const r = await this.db
      .selectFrom("users")
      .select((eb) => eb.fn.countAll().as("n"))
      .where("role", "=", "root")
      .where("state", "=", "active")
      .executeTakeFirstOrThrow();
    return toCount(r.n);
  }

  /** `mustChange`: a password someone else set, which its user must replace at the next sign-in. */
  async setPassword(id: number, passwordHash: string, mustChange = false): Promise<void> {
    await this.db
      .updateTable("users")
      .set({ password_hash: passwordHash, must_change_password: mustChange ? 1 : 0, updated_at: nowIso() })
      .where("id", "=", id)
      .execute();
  }

  async dropSession(tokenHash: string): Promise<void> {
    await this.db.deleteFrom("sessions").where("token_hash", "=", tokenHash).execute();
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
