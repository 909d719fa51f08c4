/*
 * Module "preference" for the simulator, with the Moddable SDK's API (get, set, delete, keys) and
 * the durability of NVS on a meter: when set() returns, the value is on disk, and a kill -9 at any
 * moment leaves either the old or the new file, never none (write a temporary file, then rename it).
 * The SDK's own simulator module rewrites its file in place (delete, then write), so a crash in
 * between forgets every key: the identity and pairing with it; and it keeps bytes as arrays of
 * numbers in JSON, a slot per byte, which would make the simulator's heap nothing like a meter's.
 *
 * Values are kept as NVS keeps them, as bytes: ./preferences.bin holds, per entry, the domain and key
 * (a length byte and latin1 text each), a type byte (1 bytes, 2 string, 3 integer, 4 boolean), a
 * 32-bit length and the value's bytes. Read at the first call (this module is preloaded).
 */

import { File } from "file";

const PATH = "./preferences.bin";
const TEMP = "./preferences.bin.new";
const BYTES = 1, STRING = 2, INTEGER = 3, BOOLEAN = 4;
// In an object, not a module variable: this module is preloaded (see scripts/firmware/bundle.js).
const state = { entries: undefined };

function text(bytes, at, length) {
	let s = "";
	for (let i = 0; i < length; i++)
		s += String.fromCharCode(bytes[at + i]);
	return s;
}

function load() {
	if (state.entries)
		return state.entries;
	const entries = state.entries = new Map();
	if (!File.exists(PATH))
		return entries;
	const file = new File(PATH);
	let all;
	try {
		all = file.length ? new Uint8Array(file.read(ArrayBuffer)) : new Uint8Array(0);
	}
	finally {
		file.close();
	}
	let at = 0;
	while (at < all.length) {
		const dl = all[at++];
		const domain = text(all, at, dl);
		at += dl;
		const kl = all[at++];
		const key = text(all, at, kl);
		at += kl;
		const type = all[at++];
		const length = ((all[at] << 24) | (all[at + 1] << 16) | (all[at + 2] << 8) | all[at + 3]) >>> 0;
		at += 4;
		if (at + length > all.length)
			throw new Error(`${PATH} is damaged: delete it to start without preferences`);
		const data = all.slice(at, at + length).buffer;
		at += length;
		entries.set(domain + "\0" + key, { domain, key, type, data });
	}
	return entries;
}

function header(domain, key, type, length) {
	const h = new Uint8Array(2 + domain.length + key.length + 5);
	let at = 0;
	h[at++] = domain.length;
	for (let i = 0; i < domain.length; i++)
		h[at++] = domain.charCodeAt(i);
	h[at++] = key.length;
	for (let i = 0; i < key.length; i++)
		h[at++] = key.charCodeAt(i);
	h[at++] = type;
	h[at++] = length >>> 24;
	h[at++] = length >>> 16;
	h[at++] = length >>> 8;
	h[at++] = length;
	return h.buffer;
}

function save() {
	if (File.exists(TEMP))
		File.delete(TEMP);
	const file = new File(TEMP, true);
	try {
		for (const e of state.entries.values()) {
			file.write(header(e.domain, e.key, e.type, e.data.byteLength));
			if (e.data.byteLength)
				file.write(e.data);
		}
	}
	finally {
		file.close();
	}
	if (!File.rename(TEMP, PATH.slice(2)))
		throw new Error(`cannot replace ${PATH}`);
}

function check(domain, key) {
	if (typeof domain !== "string" || typeof key !== "string" || !domain || !key || key.length > 15 || domain.length > 15)
		throw new Error("invalid domain or key");
}

function encode(value) {
	if (value instanceof ArrayBuffer)
		return { type: BYTES, data: value.slice(0) };
	if (typeof value === "string") {
		const b = new Uint8Array(value.length);
		for (let i = 0; i < value.length; i++) {
			const c = value.charCodeAt(i);
			if (c > 255)
				throw new Error("invalid value");
			b[i] = c;
		}
		return { type: STRING, data: b.buffer };
	}
	if (typeof value === "number" && Number.isInteger(value) && value >= -2147483648 && value <= 2147483647) {
		const b = new Uint8Array(4);
		b[0] = value >>> 24;
		b[1] = value >>> 16;
		b[2] = value >>> 8;
		b[3] = value;
		return { type: INTEGER, data: b.buffer };
	}
	if (typeof value === "boolean")
		return { type: BOOLEAN, data: Uint8Array.of(value ? 1 : 0).buffer };
	throw new Error("invalid value");
}

function decode(e) {
	const b = new Uint8Array(e.data);
	switch (e.type) {
		case BYTES: return e.data.slice(0);
		case STRING: return text(b, 0, b.length);
		case INTEGER: return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
		case BOOLEAN: return b[0] === 1;
	}
	return undefined;
}

export default class Preference {
	static set(domain, key, value) {
		check(domain, key);
		const { type, data } = encode(value);
		load().set(domain + "\0" + key, { domain, key, type, data });
		save();
	}
	static get(domain, key) {
		check(domain, key);
		const e = load().get(domain + "\0" + key);
		return e ? decode(e) : undefined;
	}
	static delete(domain, key) {
		check(domain, key);
		if (load().delete(domain + "\0" + key))
			save();
	}
	static keys(domain) {
		const out = [];
		for (const e of load().values())
			if (e.domain === domain)
				out.push(e.key);
		return out;
	}
}
