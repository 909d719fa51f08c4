/*
 * Fake embedded:storage/flash: partitions in RAM with NOR semantics (erase sets
 * 0xff, writes only clear bits). Only the `gridlog` partition exists, 256 blocks of 4 KB, empty at
 * every launch. The ESP32 builds use the Moddable SDK's real module instead (modules/io/flash/esp32).
 */

const BLOCK = 4096;
const BLOCKS = 256;
const partitions = new Map();

class Partition {
	#bytes;
	constructor(bytes) {
		this.#bytes = bytes;
	}
	read(count, offset) {
		this.#check(offset, count);
		return this.#bytes.slice(offset, offset + count).buffer;
	}
	write(data, offset) {
		const src = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
		this.#check(offset, src.length);
		const b = this.#bytes;
		for (let i = 0; i < src.length; i++)
			b[offset + i] &= src[i];
	}
	eraseBlock(from, to = from + 1) {
		this.#check(from * BLOCK, (to - from) * BLOCK);
		this.#bytes.fill(0xff, from * BLOCK, to * BLOCK);
	}
	status() {
		return { size: BLOCK * BLOCKS, blockLength: BLOCK, blocks: BLOCKS };
	}
	close() {
	}
	get format() {
		return "buffer";
	}
	#check(offset, count) {
		if (!(offset >= 0 && count >= 0 && offset + count <= this.#bytes.length))
			throw new RangeError("outside the partition");
	}
}

export default Object.freeze({
	open(options) {
		if (options.path !== "gridlog")
			throw new Error("can't find partition");
		let bytes = partitions.get(options.path);
		if (!bytes) {
			bytes = new Uint8Array(BLOCK * BLOCKS).fill(0xff);
			partitions.set(options.path, bytes);
		}
		return new Partition(bytes);
	}
});
