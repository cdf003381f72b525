/** Case-insensitive "contains" for list searches, the same on SQLite, MySQL and PostgreSQL. */
import { sql, type Expression, type SqlBool } from "kysely";

/** `lower(column) LIKE %text%`, with LIKE's wildcards in `text` taken literally (escape character `!`). */
export function containsText(column: string, text: string): Expression<SqlBool> {
  const pattern = `%${text.toLowerCase().replace(/[!%_]/g, "!$&")}%`;
  return sql<SqlBool>`lower(${sql.ref(column)}) like ${pattern} escape '!'`;
}
