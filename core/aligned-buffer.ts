/** The one WebAssembly API used here; the ES lib types do not declare it. */
const WasmMemory = (
  globalThis as unknown as {
    WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } };
  }
).WebAssembly.Memory;

/**
 * A zeroed buffer whose memory starts on a page boundary, as O_DIRECT reads
 * and writes need (Node's own buffers are not aligned; a WebAssembly
 * memory is, in 64 KiB pages).
 */
export function allocAligned(bytes: number): Buffer {
  const pages = Math.max(1, Math.ceil(bytes / 65536));
  return Buffer.from(new WasmMemory({ initial: pages }).buffer, 0, bytes);
}
