// Fake `gridlet/random`: counts bytes so the test can tell the port used it, and records what
// entropy() was asked, with the bytes filled while the bootloader's source was on.
export let filled = 0;
export const entropyLog: string[] = [];
let on = false;
export function fill(buffer: ArrayBuffer | ArrayBufferView): void {
  const b = ArrayBuffer.isView(buffer) ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength) : new Uint8Array(buffer);
  for (let i = 0; i < b.length; i++) b[i] = (filled + i) & 0xff;
  filled += b.length;
  if (on) entropyLog.push(`fill ${b.length}`);
}
export function entropy(value: boolean): boolean {
  on = value;
  entropyLog.push(value ? 'on' : 'off');
  return true;
}
