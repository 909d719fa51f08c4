// Fake `gridlet/random`: counts bytes so the test can tell the port used it.
export let filled = 0;
export function fill(buffer: ArrayBuffer | ArrayBufferView): void {
  const b = ArrayBuffer.isView(buffer) ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength) : new Uint8Array(buffer);
  for (let i = 0; i < b.length; i++) b[i] = (filled + i) & 0xff;
  filled += b.length;
}
