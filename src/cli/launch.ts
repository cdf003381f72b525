/**
 * dist/kiln.mjs: chooses the bundle before any module is loaded. `kiln get` has a
 * bundle of its own (get-main.ts); every other command loads the full CLI (kiln.ts).
 */
const bundle = process.argv[2] === "get" ? "./kiln-get.mjs" : "./kiln-cli.mjs";
await import(bundle);
