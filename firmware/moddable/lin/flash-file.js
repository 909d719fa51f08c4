/*
 * embedded:storage/flash for the simulator: each partition is a file in the current folder
 * (./<label>.bin) with NOR semantics: erasing sets 0xff, writing only clears bits. The record log
 * survives a restart of the simulator, and a kill -9: every write and erase is flushed to the file
 * (closed and opened again) before it returns, as a NOR write is done when the call returns.
 * Partitions: `gridlog`, 256 blocks of 4 KB, as in manifests/partitions-4MB.csv; `gridota`, the app
 * slots of firmware over the air with their boot control (2 blocks, then two slots of 1024 blocks: a
 * slot holds a lin image, the simulator's mc.so with its config line; core/update/boot-control.ts),
 * made at its first open only (an image built without releaseKeys never opens it).
 * Meters use the Moddable SDK's module (modules/io/flash/esp32) and ESP-IDF's OTA partitions.
 */

import { File } from "file";

const BLOCK = 4096;
const PARTITIONS = Object.freeze({ gridlog: 256, gridota: 2 + 2 * 512 });

class Partition {
	#path;
	#file;
	#blocks;

	constructor(path, blocks) {
		this.#path = path;
		this.#blocks = blocks;
		const size = BLOCK * blocks;
		if (File.exists(path)) {
			this.#file = new File(path, true);
			if (this.#file.length !== size) {
				this.#file.close();
				throw new Error(`${path} has ${this.#file.length} bytes, not ${size}: delete it to start an empty log`);
			}
		}
		else {
			this.#file = new File(path, true);
			const erased = new Uint8Array(BLOCK).fill(0xff).buffer;
			for (let i = 0; i < blocks; i++)
				this.#file.write(erased);
			this.#flush();
		}
	}
	read(count, offset) {
		this.#check(offset, count);
		if (count === 0)
			return new ArrayBuffer(0);
		this.#file.position = offset;
		return this.#file.read(ArrayBuffer, count);
	}
	write(data, offset) {
		const src = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
		this.#check(offset, src.length);
		if (src.length === 0)
			return;
		this.#file.position = offset;
		const bits = new Uint8Array(this.#file.read(ArrayBuffer, src.length));
		for (let i = 0; i < src.length; i++)
			bits[i] &= src[i];
		this.#file.position = offset;
		this.#file.write(bits.buffer);
		this.#flush();
	}
	eraseBlock(from, to = from + 1) {
		this.#check(from * BLOCK, (to - from) * BLOCK);
		const erased = new Uint8Array(BLOCK).fill(0xff).buffer;
		this.#file.position = from * BLOCK;
		for (let i = from; i < to; i++)
			this.#file.write(erased);
		this.#flush();
	}
	status() {
		return { size: BLOCK * this.#blocks, blockLength: BLOCK, blocks: this.#blocks };
	}
	close() {
		this.#file?.close();
		this.#file = undefined;
	}
	get format() {
		return "buffer";
	}
	#flush() {
		this.#file.close();
		this.#file = new File(this.#path, true);
	}
	#check(offset, count) {
		if (!this.#file)
			throw new Error("partition closed");
		if (!(offset >= 0 && count >= 0 && offset + count <= BLOCK * this.#blocks))
			throw new RangeError("outside the partition");
	}
}

export default Object.freeze({
	open(options) {
		const blocks = PARTITIONS[options?.path];
		if (!blocks)
			throw new Error(`can't find partition ${options?.path}`);
		return new Partition(`./${options.path}.bin`, blocks);
	}
});
