/** A wait or a timeout as people read it: `1.5 s`, `60 s`. */
export const seconds = (ms: number): string => `${+(ms / 1000).toFixed(1)} s`;
