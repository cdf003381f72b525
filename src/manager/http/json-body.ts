/**
 * Request bodies are JSON whatever the Content-Type (as Dragonfly's gin binding
 * reads them), and tolerate trailing commas, which the Open API documentation's own curl example
 * contains. Really malformed JSON is a 400 with a JSON message.
 */
import type { FastifyInstance } from "fastify";
import { badRequest } from "../errors.js";

/** Drops commas that directly precede `}` or `]` (outside strings). */
export function stripTrailingCommas(text: string): string {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      out += c;
      if (c === "\\") {
        out += text[i + 1] ?? "";
        i++;
      } else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    if (c === ",") {
      let j = i + 1;
      while (j < text.length && /\s/.test(text[j]!)) j++;
      if (text[j] === "}" || text[j] === "]") continue;
    }
    out += c;
  }
  return out;
}

function noProto(key: string, value: unknown): unknown {
  if (key === "__proto__") throw new SyntaxError('the key "__proto__" is not allowed');
  return value;
}

/**
 * V8's message quotes the input around the error: fine for text, but a binary body
 * (gzip, an image) would be echoed back as garbage. Then say what the body looks like.
 */
function describeParseError(text: string, err: Error): string {
  // U+FFFD: bytes that were not UTF-8; C0 controls other than whitespace: not text either.
  if (/[\uFFFD\u0000-\u0008\u000E-\u001F]/.test(text.slice(0, 4096))) {
    return `the body is binary (${Buffer.byteLength(text)} bytes), not JSON text; send it uncompressed as application/json`;
  }
  return err.message;
}

export function parseLenientJson(text: string): unknown {
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text, noProto);
  } catch (first) {
    try {
      return JSON.parse(stripTrailingCommas(text), noProto);
    } catch {
      throw badRequest(`request body is not valid JSON: ${describeParseError(text, first as Error)}`);
    }
  }
}

export function useLenientJson(app: FastifyInstance, bodyLimit: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string", bodyLimit }, (_req, body, done) => {
    try {
      done(null, parseLenientJson(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}
