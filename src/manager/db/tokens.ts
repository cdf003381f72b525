/** Personal access tokens (stored as sha256 of the token). */
import type { Kysely } from "kysely";
import type { DialectName } from "./database.js";
import { insertReturningId, pageOf } from "./insert.js";
import type { ManagerDatabase, TokenRow } from "./schema.js";
import { nowIso } from "../time.js";

export interface NewToken {
  name: string;
  bio: string;
  tokenHash: string;
  scopes: string[];
  expiredAt: string;
  userId: number;
}

export class TokensRepo {
  constructor(
    private readonly db: Kysely<ManagerDatabase>,
    private readonly dialect: DialectName,
  ) {}

  async create(t: NewToken): Promise<number> {
    const now = nowIso();
    return insertReturningId(this.db, this.dialect, "personal_access_tokens", {
      name: t.name,
      bio: t.bio,
      token_hash: t.tokenHash,
      scopes: t.scopes.join(","),
      state: "active",
      expired_at: t.expiredAt,
      user_id: t.userId,
      created_at: now,
      updated_at: now,
    });
  }

  byHash(hash: string): Promise<TokenRow | undefined> {
    return this.db.selectFrom("personal_access_tokens").selectAll().where("token_hash", "=", hash).executeTakeFirst();
  }

  byId(id: number): Promise<TokenRow | undefined> {
    return this.db.selectFrom("personal_access_tokens").selectAll().where("id", "=", id).executeTakeFirst();
  }

  /** A page of tokens by id, of one user or (root) of all. */
  async list(q: { userId?: number; page: number; perPage: number }): Promise<{ rows: TokenRow[]; total: number }> {
    let base = this.db.selectFrom("personal_access_tokens");
    if (q.userId !== undefined) base = base.where("user_id", "=", q.userId);
    return pageOf(
      q,
      () => base.select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow(),
      (limit, offset) => base.selectAll().orderBy("id").limit(limit).offset(offset).execute(),
    );
  }

  async update(id: number, set: { name?: string; bio?: string; state?: string; expired_at?: string }): Promise<void> {
    await this.db
      .updateTable("personal_access_tokens")
      .set({ ...set, updated_at: nowIso() })
      .where("id", "=", id)
      .execute();
  }

  async delete(id: number): Promise<boolean> {
    const r = await this.db.deleteFrom("personal_access_tokens").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}
