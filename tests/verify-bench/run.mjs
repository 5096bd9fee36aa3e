// Runs verify-bench.wasm (a wasm32-wasip1 command) under node's WASI, with its arguments:
//   node --no-warnings --no-liftoff run.mjs <verify-bench.wasm> [--secs N]
// --no-liftoff has V8 compile every function with TurboFan up front, as Envoy's V8 does.
import { readFile } from "node:fs/promises";
import process from "node:process";
import { WASI } from "node:wasi";

const [wasmPath, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: "preview1", args: ["verify-bench", ...args], env: {}, returnOnExit: true });
// The shared crate links the proxy-wasm ABI's host functions; the checks never call them.
const env = new Proxy({}, {
  get: (_, name) => () => {
    throw new Error(`verify-bench called the proxy-wasm host function ${String(name)}`);
  },
});
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, { ...wasi.getImportObject(), env });
// The shared crate also exports the proxy-wasm module's `_initialize`, which WASI.start refuses
// next to `_start`; the command needs only its memory and `_start`.
const { memory, _start } = instance.exports;
process.exitCode = wasi.start({ exports: { memory, _start } });
