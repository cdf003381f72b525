/**
 * Cluster membership on the upload ports: the credential this peer's scheduler hands
 * out with every announce reply. The peer presents it on each piece request and its
 * upload server serves only requests that carry it, so nobody outside the cluster
 * reads pieces.
 */
import { sameSecret } from "../../common/secret.js";

export class UploadMembership {
  private current: string | undefined;
  /** Still accepted after a change (a scheduler without a secret restarted): peers that have not announced since still hold it. */
  private previous: string | undefined;

  /** The credential of the latest announce reply. */
  update(credential: string): void {
    if (credential === this.current) return;
    this.previous = this.current;
    this.current = credential;
  }

  /** What to present to parents ("" before the first announce: they will refuse it). */
  get credential(): string {
    return this.current ?? "";
  }

  /** Whether a request's header carries a credential of this cluster (constant-time). */
  admits(given: string | string[] | undefined): boolean {
    const current = this.current !== undefined && sameSecret(given, this.current);
    const previous = this.previous !== undefined && sameSecret(given, this.previous);
    return current || previous;
  }
}
