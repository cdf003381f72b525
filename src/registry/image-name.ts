/** Image names as users and containerd write them (`registry:5000/team/app:v1`, `alpine`, `app@sha256:…`) → a ManifestRef. */
import { KilnError } from "../common/errors.js";
import type { ManifestRef } from "./reference.js";

const DOCKER_HUB = "registry-1.docker.io";

export interface ImageName {
  /** `host[:port]` as written (docker.io for Docker Hub). */
  host: string;
  repository: string;
  /** A tag, or a digest when `byDigest`. */
  reference: string;
  byDigest: boolean;
}

export function parseImageName(name: string): ImageName {
  let rest = name.trim();
  if (!rest || /\s/.test(rest)) throw new KilnError("BAD_REQUEST", `invalid image name ${JSON.stringify(name)}`);
  let host = "docker.io";
  const slash = rest.indexOf("/");
  const first = slash < 0 ? "" : rest.slice(0, slash);
  if (first && (first.includes(".") || first.includes(":") || first === "localhost")) {
    host = first;
    rest = rest.slice(slash + 1);
  }
  let reference = "latest";
  let byDigest = false;
  const at = rest.indexOf("@");
  if (at >= 0) {
    reference = rest.slice(at + 1);
    rest = rest.slice(0, at);
    byDigest = true;
  } else {
    const colon = rest.lastIndexOf(":");
    if (colon >= 0) {
      reference = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
    }
  }
  if (host === "docker.io" && !rest.includes("/")) rest = `library/${rest}`;
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(rest)) {
    throw new KilnError("BAD_REQUEST", `invalid repository in image name ${JSON.stringify(name)}`);
  }
  return { host, repository: rest, reference, byDigest };
}

export function formatImageName(n: ImageName): string {
  return `${n.host}/${n.repository}${n.byDigest ? "@" : ":"}${n.reference}`;
}

/** The target's conventional name: the original's tag with `-acc` appended. */
export function defaultTargetName(original: string): string {
  const n = parseImageName(original);
  if (n.byDigest) throw new KilnError("BAD_REQUEST", `${original} is named by digest: give the target image name`);
  return formatImageName({ ...n, reference: `${n.reference}-acc` });
}

/** `plainHttp`: the registry speaks HTTP (a test or in-cluster registry), as `ctr --plain-http`. */
export function imageRef(n: ImageName, plainHttp = false): ManifestRef {
  const host = n.host === "docker.io" ? DOCKER_HUB : n.host;
  return { origin: `${plainHttp ? "http" : "https"}://${host}`, repository: n.repository, reference: n.reference, search: "" };
}
