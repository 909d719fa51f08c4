// CRC-32 (IEEE 802.3: reflected, polynomial 0xEDB88320), the checksum of every flash record.
// A 16-entry table (64 bytes) instead of the usual 1 KiB one: two lookups per byte, small enough for
// the meter's heap and fast enough for the few KiB a boot or a read decodes.

const TABLE = new Uint32Array(16);
for (let i = 0; i < 16; i++) {
  let c = i;
  for (let k = 0; k < 4; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  TABLE[i] = c >>> 0;
}

/**
 * CRC-32 of `bytes[start..end)`. `salt` (an unsigned 32-bit number) changes the initial value, so the
 * same bytes checksum differently in different flash blocks: a record copied into event data cannot
 * pass for a real one elsewhere. With salt 0 this is the standard CRC-32 ("123456789" → 0xcbf43926).
 */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length, salt = 0): number {
  let crc = (0xffffffff ^ salt) | 0;
  for (let i = start; i < end; i++) {
    crc ^= bytes[i];
    crc = TABLE[crc & 15] ^ (crc >>> 4);
    crc = TABLE[crc & 15] ^ (crc >>> 4);
  }
  return (crc ^ 0xffffffff) >>> 0;
}
