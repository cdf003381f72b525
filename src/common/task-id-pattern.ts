/** What a task ID looks like; apart from task-id.ts so that the wire schemas need no node:crypto (they run in the browser too). */
export const TASK_ID_PATTERN = /^(?:[a-f0-9]{64}|[a-f0-9]{128})$/;
