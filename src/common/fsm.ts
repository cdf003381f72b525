import { KilnError } from "./errors.js";

/**
 * A tiny explicit state machine: a table of allowed transitions, and a guard
 * that refuses anything else, so an impossible state change is a loud bug.
 */
export class StateMachine<S extends string> {
  constructor(
    private current: S,
    private readonly allowed: Readonly<Record<S, readonly S[]>>,
    private readonly what: string,
  ) {}

  get state(): S {
    return this.current;
  }

  is(...states: S[]): boolean {
    return states.includes(this.current);
  }

  can(next: S): boolean {
    return this.allowed[this.current].includes(next);
  }

  to(next: S): void {
    if (this.current === next) return;
    if (!this.can(next)) throw new KilnError("CONFLICT", `${this.what}: cannot go from ${this.current} to ${next}`);
    this.current = next;
  }
}
